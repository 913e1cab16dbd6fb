"""The endpoints, written once for both clients.

Each method builds a ``Call`` and returns ``self._send(call)``: the result itself with
``Client``, an awaitable of it with ``AsyncClient``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from gateway.client._common import (API, OMIT, Call, Contacts, Ref, compact, contacts_part,
                                    given, ref, rfc3339)

Send = Callable[[Call], Any]


class Resource:
    def __init__(self, send: Send) -> None:
        self._send = send


class AgentsResource(Resource):
    """``/api/v1/agents``: the voice agents campaigns dial for."""

    def create(self, name: str, *, status: str | None = None, greeting: str | None = None,
               sip_uri: str | None = None) -> Any:
        """Create an agent (``status`` ``active`` by default); returns it."""
        body = compact(name=name, status=status, greeting=greeting, sip_uri=sip_uri)
        return self._send(Call("POST", f"{API}/agents", json=body))

    def get(self, agent: Ref) -> Any:
        return self._send(Call("GET", f"{API}/agents/{ref(agent)}"))

    def list(self, page: int = 0) -> Any:
        """One page (oldest first): ``{"data", "page", "page_size", "total", "has_more"}``."""
        return self._send(Call("GET", f"{API}/agents", params={"page": page}))

    def update(self, agent: Ref, *, name: str = OMIT, status: str = OMIT,
               greeting: str = OMIT, sip_uri: str | None = OMIT) -> Any:
        """Change only the fields passed; ``sip_uri=None`` clears it."""
        body = given(name=name, status=status, greeting=greeting, sip_uri=sip_uri)
        return self._send(Call("PATCH", f"{API}/agents/{ref(agent)}", json=body))

    def delete(self, agent: Ref) -> Any:
        """Soft-delete; returns None. Running campaigns using it fail with a reason."""
        return self._send(Call("DELETE", f"{API}/agents/{ref(agent)}"))


class PhoneNumbersResource(Resource):
    """``/api/v1/phone-numbers``: caller IDs (E.164)."""

    def create(self, number: str, *, outbound_enabled: bool | None = None,
               label: str | None = None) -> Any:
        body = compact(number=number, outbound_enabled=outbound_enabled, label=label)
        return self._send(Call("POST", f"{API}/phone-numbers", json=body))

    def get(self, phone_number: Ref) -> Any:
        return self._send(Call("GET", f"{API}/phone-numbers/{ref(phone_number)}"))

    def list(self, page: int = 0) -> Any:
        return self._send(Call("GET", f"{API}/phone-numbers", params={"page": page}))

    def update(self, phone_number: Ref, *, outbound_enabled: bool = OMIT,
               label: str = OMIT) -> Any:
        body = given(outbound_enabled=outbound_enabled, label=label)
        return self._send(Call("PATCH", f"{API}/phone-numbers/{ref(phone_number)}", json=body))

    def delete(self, phone_number: Ref) -> Any:
        return self._send(Call("DELETE", f"{API}/phone-numbers/{ref(phone_number)}"))


class CampaignsResource(Resource):
    """``/api/v1/campaigns``. The page walkers and ``stream_events`` are added by each
    client's subclass (they are generators: sync or async)."""

    def create(self, name: str, agent_id: Ref, phone_number_id: Ref, contacts: Contacts,
               max_concurrent_calls: int | None = None, retries_per_contact: int | None = None,
               retry_delay_seconds: int | None = None,
               scheduled_at: str | datetime | None = None) -> Any:
        """Upload a contacts CSV (``multipart/form-data``) and create the campaign.

        ``contacts``: a file opened in binary mode, bytes, or a path. ``scheduled_at``: an
        RFC 3339 string or an aware datetime; with it the campaign is ``scheduled``, else
        ``draft``. Options left as None take the server's defaults. Returns the campaign
        with its ``import_report`` (rows accepted, rows rejected and why).
        """
        form = compact(name=name, agent_id=ref(agent_id), phone_number_id=ref(phone_number_id),
                       max_concurrent_calls=max_concurrent_calls,
                       retries_per_contact=retries_per_contact,
                       retry_delay_seconds=retry_delay_seconds,
                       scheduled_at=rfc3339(scheduled_at))
        return self._send(Call("POST", f"{API}/campaigns",
                               data={key: str(value) for key, value in form.items()},
                               files={"contacts": contacts_part(contacts)}))

    def get(self, campaign: Ref) -> Any:
        return self._send(Call("GET", f"{API}/campaigns/{ref(campaign)}"))

    def list(self, status: str | None = None, page: int = 0) -> Any:
        """One page, newest first, optionally of one status."""
        params = compact(status=status, page=page)
        return self._send(Call("GET", f"{API}/campaigns", params=params))

    def start(self, campaign: Ref) -> Any:
        """draft, scheduled or paused → running (409 ``concurrency_budget_exceeded`` when
        the account's budget is full). Returns the campaign."""
        return self._transition(campaign, "start")

    def pause(self, campaign: Ref) -> Any:
        """running → paused: nothing new is dialed; live calls finish."""
        return self._transition(campaign, "pause")

    def resume(self, campaign: Ref) -> Any:
        """paused → running."""
        return self._transition(campaign, "resume")

    def stop(self, campaign: Ref) -> Any:
        """running, paused or scheduled → completed; contacts never dialed are skipped."""
        return self._transition(campaign, "stop")

    def delete(self, campaign: Ref) -> Any:
        """Delete a draft (409 for any other status); returns None."""
        return self._send(Call("DELETE", f"{API}/campaigns/{ref(campaign)}"))

    def contacts(self, campaign: Ref, status: str | None = None, page: int = 0) -> Any:
        """One page of contacts (CSV order), optionally of one status."""
        params = compact(status=status, page=page)
        return self._send(Call("GET", f"{API}/campaigns/{ref(campaign)}/contacts",
                               params=params))

    def calls(self, campaign: Ref, page: int = 0) -> Any:
        """One page of call attempts."""
        return self._send(Call("GET", f"{API}/campaigns/{ref(campaign)}/calls",
                               params={"page": page}))

    def _transition(self, campaign: Ref, verb: str) -> Any:
        return self._send(Call("POST", f"{API}/campaigns/{ref(campaign)}/{verb}"))

    def _events_path(self, campaign: Ref) -> str:
        return f"{API}/campaigns/{ref(campaign)}/events"


class ClientBase:
    """What both clients expose besides their resources' generators."""

    agents: AgentsResource
    phone_numbers: PhoneNumbersResource

    def _send(self, call: Call) -> Any:  # pragma: no cover - each client defines it
        raise NotImplementedError

    def call_limits(self) -> Any:
        """The account's caps: ``concurrent_max``, ``calls_per_minute``,
        ``daily_calls_max``, ``daily_minutes_max`` (null: unlimited)."""
        return self._send(Call("GET", f"{API}/call-limits"))
