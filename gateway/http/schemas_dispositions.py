"""The body of ``POST /api/v1/calls/{call_id}/disposition``: how the agent says an answered
call went."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator

from gateway.clock import utcnow
from gateway.http.schemas import Body
from gateway.vocabulary import MAX_CALLBACK_AHEAD_SECONDS, MAX_DISPOSITION_NOTES_CHARS, Disposition

# A callback further ahead than this is a new campaign, not a callback.
MAX_CALLBACK_AHEAD = timedelta(seconds=MAX_CALLBACK_AHEAD_SECONDS)
MAX_NOTES_CHARS = MAX_DISPOSITION_NOTES_CHARS


class DispositionIn(Body):
    disposition: Disposition = Field(
        description="completed and not_interested leave the contact completed; voicemail "
                    "retries it as the campaign's retry_policy says for voicemail; "
                    "callback calls it again at callback_at; do_not_call puts the number "
                    "on the account's do-not-call list.")
    callback_at: AwareDatetime | None = Field(
        None, validate_default=True,
        description="RFC 3339 with an offset; required with callback (and refused with "
                    "anything else): in the future, at most 30 days ahead.")
    notes: str | None = Field(None, max_length=MAX_NOTES_CHARS,
                              description="Free text, up to 2,000 characters.")

    @field_validator("callback_at")
    @classmethod
    def _callback_time(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        disposition = info.data.get("disposition")
        if disposition is None:  # the disposition itself is invalid: that error is shown
            return value
        if disposition != Disposition.CALLBACK:
            if value is not None:
                raise ValueError(f"is only given with the callback disposition (not with "
                                 f"{disposition})")
            return None
        if value is None:
            raise ValueError("is required with the callback disposition: when to call back "
                             "(RFC 3339 with an offset)")
        try:
            in_utc = value.astimezone(UTC)
        except OverflowError:  # past either end of the calendar once in UTC
            raise ValueError("must be in the future" if value.year == 1 else
                             "must be at most 30 days ahead") from None
        now = utcnow()
        if in_utc <= now:
            raise ValueError("must be in the future")
        if in_utc > now + MAX_CALLBACK_AHEAD:
            raise ValueError("must be at most 30 days ahead")
        return in_utc
