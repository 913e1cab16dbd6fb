"""``/api/v1/call-limits`` and ``/api/v1/settings``: the account's caps, and the settings
its campaigns inherit."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import document_response, validate_request

from gateway.http.context import principal, respond, services
from gateway.http.errors import ApiError, validation_error
from gateway.http.openapi import API, errors
from gateway.http.schemas import AccountSettingsOut, AccountSettingsUpdate, CallLimits
from gateway.logs import get_logger
from gateway.store import accounts
from gateway.store.accounts import AccountSettings

bp = Blueprint("limits", __name__)
log = get_logger(__name__)


def _gone() -> ApiError:
    # The account was deleted while its key was cached.
    return ApiError(401, "unauthorized", "invalid API key")


@bp.get("/call-limits")
@document_response(CallLimits)
@errors(*API)
async def call_limits() -> Response:
    # Read fresh: the principal may come from the key cache, and an operator may just
    # have changed the caps.
    account = await accounts.get(services().db, principal().account.id)
    if account is None:
        raise _gone()
    return respond(CallLimits(concurrent_max=account.concurrent_max,
                              calls_per_minute=account.calls_per_minute,
                              daily_calls_max=account.daily_calls_max,
                              daily_minutes_max=account.daily_minutes_max))


def _settings_out(settings: AccountSettings) -> AccountSettingsOut:
    return AccountSettingsOut.model_validate({"calling_window": settings.calling_window})


@bp.get("/settings")
@document_response(AccountSettingsOut)
@errors(*API)
async def get_settings() -> Response:
    """The account's settings: the calling window of its campaigns that have none."""
    settings = await accounts.get_settings(services().db, principal().account.id)
    if settings is None:
        raise _gone()
    return respond(_settings_out(settings))


@bp.patch("/settings")
@validate_request(AccountSettingsUpdate)
@document_response(AccountSettingsOut)
@errors(400, 413, *API)
async def update_settings(data: AccountSettingsUpdate) -> Response:
    """Change the settings named in the body; ``{"calling_window": null}`` clears the
    window."""
    # calling_window is the only setting so far: a body without it changes nothing, which
    # is more likely a mistake (a misspelt name is refused as unknown) than a request.
    if "calling_window" not in data.model_fields_set:
        raise validation_error("body", "must name a setting to change: calling_window (an "
                               "object, or null to clear it)")
    window = None if data.calling_window is None else data.calling_window.model_dump()
    account_id = principal().account.id
    settings = await accounts.set_calling_window(services().db, account_id, window)
    if settings is None:
        raise _gone()
    log.info("account.settings_changed", account_id=str(account_id),
             calling_window=window)
    return respond(_settings_out(settings))
