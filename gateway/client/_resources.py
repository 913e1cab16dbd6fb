"""The endpoints, written once for both clients.

Each method is an ``@endpoint``: it builds a ``Call[T]``, which the resource hands to its
client's ``_send``. So it returns the result ``T`` itself on ``Client``, a coroutine of it
on ``AsyncClient`` (``Mode``: ``Blocking`` or ``Awaiting``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from gateway.client._common import (
    API,
    OMIT,
    Call,
    Contacts,
    Mode,
    Ref,
    Sender,
    compact,
    contacts_part,
    csv_part,
    endpoint,
    given,
    json_text,
    ref,
    rfc3339,
)
from gateway.client.types import (
    AccountSettings,
    Agent,
    AgentStatusValue,
    CallAttempt,
    CallingWindow,
    CallLimits,
    Campaign,
    CampaignStatusValue,
    Contact,
    ContactStatusValue,
    CreatedCampaign,
    CreatedWebhook,
    DeliveryStatusValue,
    DispositionValue,
    DncAdded,
    DncEntry,
    DncUploadReport,
    Page,
    PhoneNumber,
    RetryRule,
    Webhook,
    WebhookDelivery,
    WebhookEventValue,
)
from gateway.vocabulary import (
    AgentStatus,
    CampaignStatus,
    ContactStatus,
    DeliveryStatus,
    Disposition,
    WebhookEvent,
)

# A calling window or retry policy as a caller may write one: the TypedDict, or any mapping
# of the same shape.
WindowIn = CallingWindow | Mapping[str, Any]
PolicyIn = Mapping[str, RetryRule | Mapping[str, int]]


class Resource(Sender[Mode]):
    def __init__(self, send: Callable[[Call[Any]], Any]) -> None:
        self._send = send


class AgentsResource(Resource[Mode]):
    """``/api/v1/agents``: the voice agents campaigns dial for."""

    @endpoint
    def create(self, name: str, *, status: AgentStatus | AgentStatusValue | None = None,
               greeting: str | None = None, sip_uri: str | None = None,
               max_concurrent_calls: int | None = None) -> Call[Agent]:
        """Create an agent (``status`` ``active`` by default); returns it. ``greeting`` may
        use ``{{variables}}`` (the contacts' CSV columns); ``max_concurrent_calls``: the
        calls it takes at once (1 to 10,000; omitted: no cap)."""
        body = compact(name=name, status=status, greeting=greeting, sip_uri=sip_uri,
                       max_concurrent_calls=max_concurrent_calls)
        return Call("POST", f"{API}/agents", json=body)

    @endpoint
    def get(self, agent: Ref) -> Call[Agent]:
        return Call("GET", f"{API}/agents/{ref(agent)}")

    @endpoint
    def list(self, page: int = 0) -> Call[Page[Agent]]:
        """One page (oldest first): ``{"data", "page", "page_size", "total", "has_more"}``."""
        return Call("GET", f"{API}/agents", params={"page": page})

    @endpoint
    def update(self, agent: Ref, *, name: str = OMIT,
               status: AgentStatus | AgentStatusValue = OMIT, greeting: str = OMIT,
               sip_uri: str | None = OMIT, max_concurrent_calls: int | None = OMIT
               ) -> Call[Agent]:
        """Change only the fields passed; ``sip_uri=None`` or ``max_concurrent_calls=None``
        clears it."""
        body = given(name=name, status=status, greeting=greeting, sip_uri=sip_uri,
                     max_concurrent_calls=max_concurrent_calls)
        return Call("PATCH", f"{API}/agents/{ref(agent)}", json=body)

    @endpoint
    def delete(self, agent: Ref) -> Call[None]:
        """Soft-delete; returns None. Running campaigns using it fail with a reason."""
        return Call("DELETE", f"{API}/agents/{ref(agent)}")


class PhoneNumbersResource(Resource[Mode]):
    """``/api/v1/phone-numbers``: caller IDs (E.164)."""

    @endpoint
    def create(self, number: str, *, outbound_enabled: bool | None = None,
               label: str | None = None) -> Call[PhoneNumber]:
        """Add a caller ID (E.164; 409 ``conflict`` with ``field`` ``number`` when the
        account has it already); returns it."""
        body = compact(number=number, outbound_enabled=outbound_enabled, label=label)
        return Call("POST", f"{API}/phone-numbers", json=body)

    @endpoint
    def get(self, phone_number: Ref) -> Call[PhoneNumber]:
        return Call("GET", f"{API}/phone-numbers/{ref(phone_number)}")

    @endpoint
    def list(self, page: int = 0) -> Call[Page[PhoneNumber]]:
        """One page (oldest first): ``{"data", "page", "page_size", "total", "has_more"}``."""
        return Call("GET", f"{API}/phone-numbers", params={"page": page})

    @endpoint
    def update(self, phone_number: Ref, *, outbound_enabled: bool = OMIT,
               label: str = OMIT) -> Call[PhoneNumber]:
        """Change only the fields passed."""
        body = given(outbound_enabled=outbound_enabled, label=label)
        return Call("PATCH", f"{API}/phone-numbers/{ref(phone_number)}", json=body)

    @endpoint
    def delete(self, phone_number: Ref) -> Call[None]:
        """Soft-delete; returns None."""
        return Call("DELETE", f"{API}/phone-numbers/{ref(phone_number)}")


class CampaignsResource(Resource[Mode]):
    """``/api/v1/campaigns``. The page walkers and ``stream_events`` are added by each
    client's subclass (they are generators: sync or async)."""

    @endpoint
    def create(self, name: str, agent_id: Ref, phone_number_id: Ref, contacts: Contacts,
               max_concurrent_calls: int | None = None, retries_per_contact: int | None = None,
               retry_delay_seconds: int | None = None,
               scheduled_at: str | datetime | None = None,
               calling_window: WindowIn | None = None,
               retry_policy: PolicyIn | None = None) -> Call[CreatedCampaign]:
        """Upload a contacts CSV (``multipart/form-data``) and create the campaign.

        ``contacts``: a file opened in binary mode, bytes, or a path. ``scheduled_at``: an
        RFC 3339 string or an aware datetime; with it the campaign is ``scheduled``, else
        ``draft``. ``calling_window``: ``{"days": ["mon", ...], "start": "09:00", "end":
        "20:00"}`` in each contact's local time (None: the account's window, if any).
        ``retry_policy``: by outcome (``busy``, ``no_answer``, ``failed``,
        ``agent_unavailable``, ``voicemail``), ``{"delay_seconds"?, "max_attempts"?}``.
        Options left as None take the server's defaults; a bad window or policy is a
        ``ValidationError`` naming the part (``calling_window.start``). Returns the
        campaign with its ``import_report`` (rows accepted, rows rejected and why).
        """
        form = compact(name=name, agent_id=ref(agent_id), phone_number_id=ref(phone_number_id),
                       max_concurrent_calls=max_concurrent_calls,
                       retries_per_contact=retries_per_contact,
                       retry_delay_seconds=retry_delay_seconds,
                       scheduled_at=rfc3339(scheduled_at),
                       calling_window=json_text(calling_window),
                       retry_policy=json_text(retry_policy))
        return Call("POST", f"{API}/campaigns",
                    data={key: str(value) for key, value in form.items()},
                    files={"contacts": contacts_part(contacts)})

    @endpoint
    def get(self, campaign: Ref) -> Call[Campaign]:
        return Call("GET", f"{API}/campaigns/{ref(campaign)}")

    @endpoint
    def list(self, status: CampaignStatus | CampaignStatusValue | None = None,
             page: int = 0) -> Call[Page[Campaign]]:
        """One page, newest first, optionally of one status."""
        params = compact(status=status, page=page)
        return Call("GET", f"{API}/campaigns", params=params)

    @endpoint
    def start(self, campaign: Ref) -> Call[Campaign]:
        """draft, scheduled or paused → running (409 ``concurrency_budget_exceeded`` when
        the account's budget is full). Returns the campaign."""
        return self._transition(campaign, "start")

    @endpoint
    def pause(self, campaign: Ref) -> Call[Campaign]:
        """running → paused: nothing new is dialed; live calls finish."""
        return self._transition(campaign, "pause")

    @endpoint
    def resume(self, campaign: Ref) -> Call[Campaign]:
        """paused → running."""
        return self._transition(campaign, "resume")

    @endpoint
    def stop(self, campaign: Ref) -> Call[Campaign]:
        """running, paused or scheduled → completed; contacts never dialed are skipped."""
        return self._transition(campaign, "stop")

    @endpoint
    def rerun(self, campaign: Ref,
              statuses: Iterable[ContactStatus | ContactStatusValue],
              name: str | None = None) -> Call[Campaign]:
        """A new draft campaign of a completed or failed one's contacts whose status is in
        ``statuses`` (e.g. ``["failed"]``), with its agent, number and settings; numbers
        on the do-not-call list now are left out. ``name``: default the source's with
        " (rerun)". 409 if the source is not finished, 400 ``no_contacts`` if no contact
        matches. Returns the new campaign."""
        return Call("POST", f"{API}/campaigns/{ref(campaign)}/rerun",
                    json=compact(statuses=[str(status) for status in statuses], name=name))

    @endpoint
    def delete(self, campaign: Ref) -> Call[None]:
        """Delete a draft (409 for any other status); returns None."""
        return Call("DELETE", f"{API}/campaigns/{ref(campaign)}")

    @endpoint
    def contacts(self, campaign: Ref, status: ContactStatus | ContactStatusValue | None = None,
                 page: int = 0) -> Call[Page[Contact]]:
        """One page of contacts (CSV order), optionally of one status."""
        params = compact(status=status, page=page)
        return Call("GET", f"{API}/campaigns/{ref(campaign)}/contacts", params=params)

    @endpoint
    def calls(self, campaign: Ref, page: int = 0) -> Call[Page[CallAttempt]]:
        """One page of call attempts."""
        return Call("GET", f"{API}/campaigns/{ref(campaign)}/calls", params={"page": page})

    def _transition(self, campaign: Ref, verb: str) -> Call[Campaign]:
        return Call("POST", f"{API}/campaigns/{ref(campaign)}/{verb}")

    def _events_path(self, campaign: Ref) -> str:
        return f"{API}/campaigns/{ref(campaign)}/events"


class DncResource(Resource[Mode]):
    """``/api/v1/dnc``: the account's do-not-call list, numbers no campaign dials. Numbers
    are E.164 or national in the server's default region; the server normalises them."""

    @endpoint
    def add(self, numbers: Iterable[str]) -> Call[DncAdded]:
        """List 1 to 10,000 numbers (a single str is one number); returns ``{"added",
        "already_listed"}``. One invalid number: ``ValidationError`` whose ``field`` names
        it (``numbers[3]``), and nothing is added."""
        items = [numbers] if isinstance(numbers, str) else list(numbers)
        return Call("POST", f"{API}/dnc", json={"numbers": items})

    @endpoint
    def upload(self, csv: Contacts) -> Call[DncUploadReport]:
        """List the numbers of a CSV with a ``phone_number`` column (a binary file, bytes
        or a path; other columns are ignored). Bad rows are reported, not fatal: returns
        ``{"added", "already_listed", "rows_rejected", "rejected", "rejected_counts"}``."""
        return Call("POST", f"{API}/dnc", files={"file": csv_part(csv, "dnc")})

    @endpoint
    def list(self, page: int = 0, number: str | None = None) -> Call[Page[DncEntry]]:
        """One page, in number order; ``number``: only that number (none or one entry)."""
        return Call("GET", f"{API}/dnc", params=compact(page=page, number=number))

    @endpoint
    def delete(self, number: str | Mapping[str, object]) -> Call[None]:
        """Take a number (or an entry's dict) off the list; returns None
        (``NotFoundError`` if it was not on it)."""
        text = str(number["number"] if isinstance(number, Mapping) else number)
        if not text:
            raise ValueError("a number is required")
        return Call("DELETE", f"{API}/dnc/{quote(text, safe='')}")


class SettingsResource(Resource[Mode]):
    """``/api/v1/settings``: what the account's campaigns inherit."""

    @endpoint
    def get(self) -> Call[AccountSettings]:
        """``{"calling_window": {...} | None}``."""
        return Call("GET", f"{API}/settings")

    @endpoint
    def update(self, *, calling_window: WindowIn | None = OMIT) -> Call[AccountSettings]:
        """Change the settings passed; returns them all. ``calling_window``: the window of
        the campaigns that have none of their own; ``None`` clears it (they call at any
        hour)."""
        return Call("PATCH", f"{API}/settings", json=given(calling_window=calling_window))


class CallsResource(Resource[Mode]):
    """``/api/v1/calls``: one call (an attempt of ``campaigns.calls``), by its id."""

    @endpoint
    def disposition(self, call: Ref, disposition: Disposition | DispositionValue, *,
                    callback_at: str | datetime | None = None,
                    notes: str | None = None) -> Call[CallAttempt]:
        """Say how an answered call went, once, while it is live or up to 24 hours after
        it ended; returns the call. ``callback``: call the contact again at
        ``callback_at`` (RFC 3339 str or aware datetime; required with it, refused with
        the others; at most 30 days ahead); ``voicemail``: retry as the campaign's
        ``retry_policy`` says; ``do_not_call``: list the number. ``notes``: up to 2,000
        characters. ``ConflictError`` when it is too late, already said, or the call was
        not answered."""
        body = compact(disposition=disposition,
                       callback_at=rfc3339(callback_at, "callback_at"), notes=notes)
        return Call("POST", f"{API}/calls/{ref(call)}/disposition", json=body)


class WebhooksResource(Resource[Mode]):
    """``/api/v1/webhooks``: endpoints that receive the account's events, signed per
    Standard Webhooks (verify them with the ``standardwebhooks`` package and the secret)."""

    @endpoint
    def create(self, url: str, *,
               events: Iterable[WebhookEvent | WebhookEventValue] | None = None,
               description: str | None = None) -> Call[CreatedWebhook]:
        """Add an endpoint (every event type unless ``events`` names some); returns it with
        its ``secret``, shown only this once."""
        body = compact(url=url, events=None if events is None else [str(e) for e in events],
                       description=description)
        return Call("POST", f"{API}/webhooks", json=body)

    @endpoint
    def get(self, webhook: Ref) -> Call[Webhook]:
        return Call("GET", f"{API}/webhooks/{ref(webhook)}")

    @endpoint
    def list(self, page: int = 0) -> Call[Page[Webhook]]:
        """One page (oldest first): ``{"data", "page", "page_size", "total", "has_more"}``."""
        return Call("GET", f"{API}/webhooks", params={"page": page})

    @endpoint
    def delete(self, webhook: Ref) -> Call[None]:
        """Delete it with its deliveries (pending ones are not sent); returns None."""
        return Call("DELETE", f"{API}/webhooks/{ref(webhook)}")

    @endpoint
    def enable(self, webhook: Ref) -> Call[Webhook]:
        """Take events again after being disabled; the deliveries abandoned in the last
        day are sent again."""
        return Call("POST", f"{API}/webhooks/{ref(webhook)}/enable")

    @endpoint
    def deliveries(self, webhook: Ref, page: int = 0,
                   status: DeliveryStatus | DeliveryStatusValue | None = None
                   ) -> Call[Page[WebhookDelivery]]:
        """One page of its deliveries, newest first, each with its last try."""
        return Call("GET", f"{API}/webhooks/{ref(webhook)}/deliveries",
                    params=compact(page=page, status=status))

    @endpoint
    def resend(self, webhook: Ref, event: str | WebhookDelivery) -> Call[WebhookDelivery]:
        """Send an event again (a delivery's ``event_id``, or the delivery itself), as a
        new delivery with the same ``webhook-id``; returns it."""
        event_id = event if isinstance(event, str) else event["event_id"]
        return Call("POST", f"{API}/webhooks/{ref(webhook)}/deliveries/"
                            f"{quote(event_id, safe='')}/resend")


class ClientBase(Sender[Mode]):
    """What both clients expose besides their resources' generators."""

    agents: AgentsResource[Mode]
    phone_numbers: PhoneNumbersResource[Mode]
    dnc: DncResource[Mode]
    settings: SettingsResource[Mode]
    calls: CallsResource[Mode]
    webhooks: WebhooksResource[Mode]

    @endpoint
    def call_limits(self) -> Call[CallLimits]:
        """The account's caps: ``concurrent_max``, ``calls_per_minute``,
        ``daily_calls_max``, ``daily_minutes_max`` (null: unlimited)."""
        return Call("GET", f"{API}/call-limits")
