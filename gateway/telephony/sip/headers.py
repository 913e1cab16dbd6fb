"""Header field values: Via, name-addr (From/To/Contact/Route), SIP URIs, X- headers.

Parsers raise :class:`~gateway.telephony.sip.message.SipParseError` on values they cannot
read. The ``X-`` header builders are the one place contact data enters a SIP message:
names are reduced to token characters and values percent-encoded, so no CR, LF or other
control character from a CSV cell can reach the wire. The agent's disposition on its BYE
(``X-Disposition``...) is read by :func:`agent_disposition`, which is total instead: a
value it cannot use is ignored, never an error, since the call is over either way.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import attrs

from gateway.telephony.sip.message import SipMessage, SipParseError, SipRequest, SipResponse
from gateway.vocabulary import MAX_CALLBACK_AHEAD_SECONDS, MAX_DISPOSITION_NOTES_CHARS, Disposition

BRANCH_MAGIC = "z9hG4bK"
_SPACE = re.compile(r"\s")  # what str.isspace takes: Unicode white space too
_PORT = re.compile(r"[0-9]{1,5}")  # ASCII digits only: int() reads "²" or "٣" otherwise


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(10)


def new_tag() -> str:
    return secrets.token_hex(8)


def parse_params(text: str) -> dict[str, str]:
    """``;a=1;lr;b="x y"`` → ``{"a": "1", "lr": "", "b": "x y"}`` (names lower-cased)."""
    params: dict[str, str] = {}
    for part in _split_outside_quotes(text, ";"):
        name, _, value = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = value.strip().strip('"')
    return params


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    if '"' not in text:
        return [part.strip() for part in text.split(separator) if part.strip()]
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


@attrs.frozen
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")


def parse_via(value: str) -> Via:
    protocol, _, rest = value.strip().partition(" ")
    pieces = protocol.split("/")
    if len(pieces) != 3 or pieces[0].upper() != "SIP":
        raise SipParseError(f"bad Via {value[:60]!r}")
    sent_by, _, params = rest.strip().partition(";")
    host, port = split_host_port(sent_by.strip())
    return Via(pieces[2].upper(), host, port, parse_params(params))


def split_host_port(text: str) -> tuple[str, int | None]:
    """``host:port`` (or ``[v6]:port``) → (host, port or None)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host or _SPACE.search(host):
        raise SipParseError(f"bad host {text[:60]!r}")
    if not port_text:
        return host, None
    if _PORT.fullmatch(port_text) is None or not 0 < int(port_text) < 65536:
        raise SipParseError(f"bad port {port_text[:10]!r}")
    return host, int(port_text)


@attrs.frozen
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def loose_route(self) -> bool:
        return "lr" in self.params


def parse_uri(uri: str) -> SipUri:
    scheme, colon, rest = uri.strip().partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise SipParseError(f"not a SIP URI {uri[:60]!r}")
    rest = rest.split("?", 1)[0]
    hostpart, _, params = rest.partition(";")
    user, at, hostport = hostpart.rpartition("@")
    host, port = split_host_port(hostport)
    return SipUri(scheme.lower(), user if at else None, host, port, parse_params(params))


@attrs.frozen
class NameAddr:
    """``"Display" <uri>;params`` or a bare ``uri;params`` (params then belong to the
    header, RFC 3261 §20.10)."""

    display: str
    uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")


def parse_name_addr(value: str) -> NameAddr:
    value = value.strip()
    if "<" in value:
        display, _, rest = value.partition("<")
        uri, closed, params = rest.partition(">")
        if not closed:
            raise SipParseError(f"unclosed '<' in {value[:60]!r}")
        return NameAddr(display.strip().strip('"'), uri.strip(), parse_params(params))
    uri, _, params = value.partition(";")
    if not uri:
        raise SipParseError("empty address")
    return NameAddr("", uri.strip(), parse_params(params))


def top_via(message: SipRequest | SipResponse) -> Via:
    return parse_via(message.get("via") or "")


# -- X- headers: contact data on the wire -------------------------------------------------

_NAME_SAFE = "-_.!*+`'~"  # token characters kept as they are in a header name


def x_header_name(name: str) -> str:
    """``X-Var-`` + the variable's name, its non-token bytes percent-encoded (``%`` is a
    token character): ``first name`` → ``X-Var-first%20name``. Lossless and injection-safe."""
    return "X-Var-" + (quote(name, safe=_NAME_SAFE) or "%00")


def x_header_value(value: str) -> str:
    """A value percent-encoded as UTF-8 (RFC 3986 unreserved kept): no control characters,
    no commas or quotes that a SIP parser could misread."""
    return quote(value, safe="-_.~")


def make_response(request: SipRequest, status: int, reason: str,
                  to_tag: str | None = None, extra: tuple[tuple[str, str], ...] = ()
                  ) -> SipResponse:
    """A response to ``request`` (RFC 3261 §8.2.6.2): Via, From, Call-ID, CSeq copied;
    To copied, with ``to_tag`` added when it has none."""
    headers = [(name, value) for name, value in request.headers
               if name.lower() in ("via", "v", "from", "f", "call-id", "i", "cseq")]
    to = request.get("to") or ""
    if to_tag and "tag" not in parse_name_addr(to).params:
        to = f"{to};tag={to_tag}"
    headers.append(("To", to))
    return SipResponse((*headers, *extra), b"", status=status, reason=reason)


# -- the agent's disposition, on its BYE ------------------------------------------------

# The bounds the API puts on the same values.
MAX_CALLBACK_AHEAD = timedelta(seconds=MAX_CALLBACK_AHEAD_SECONDS)
MAX_NOTES_CHARS = MAX_DISPOSITION_NOTES_CHARS
# RFC 3339 (section 5.6) date-time, ASCII digits only; its offset is required.
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                        r"(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")
_DISPOSITIONS = {d.value: d for d in Disposition}


@attrs.frozen
class AgentDisposition:
    """What the agent said of the call as it hung up."""

    disposition: Disposition
    callback_at: datetime | None = None  # UTC; with a callback only
    notes: str | None = None


def agent_disposition(message: SipMessage, now: datetime
                      ) -> tuple[AgentDisposition | None, list[str]]:
    """The disposition the agent's BYE carries, and what of it was ignored (the reasons,
    for a debug log: they never quote the notes). Total: whatever the header values, a
    disposition or None, never an exception.

    ``X-Disposition`` is a disposition's name (any case); ``callback`` needs
    ``X-Callback-At``, an RFC 3339 time with an offset after ``now`` and at most 30 days
    ahead (else the whole disposition is ignored: a callback without a time cannot be
    kept); ``X-Callback-At`` with another disposition is ignored. ``X-Disposition-Notes``
    (up to 2,000 characters, as it is on the wire) is kept with any disposition."""
    ignored: list[str] = []
    raw = message.get("x-disposition")
    if raw is None:
        return None, ignored
    disposition = _DISPOSITIONS.get(raw.strip().lower())
    if disposition is None:
        return None, [f"X-Disposition {raw[:40]!r} is not a disposition"]
    callback_at = None
    raw_time = message.get("x-callback-at")
    if disposition == Disposition.CALLBACK:
        callback_at, problem = _callback_time(raw_time, now)
        if callback_at is None:
            return None, [f"X-Disposition callback ignored: X-Callback-At {problem}"]
    elif raw_time is not None:
        ignored.append(f"X-Callback-At ignored with X-Disposition {disposition}")
    notes = message.get("x-disposition-notes")
    if notes is not None:
        notes = notes.strip()
        if len(notes) > MAX_NOTES_CHARS or "\x00" in notes:
            # (A parsed message holds no NUL; one built here might.)
            ignored.append(f"X-Disposition-Notes ignored: over {MAX_NOTES_CHARS} "
                           "characters, or holding NUL")
            notes = None
    return AgentDisposition(disposition, callback_at, notes or None), ignored


def _callback_time(raw: str | None, now: datetime) -> tuple[datetime | None, str]:
    """(the time in UTC, "") or (None, what is wrong with it)."""
    if raw is None:
        return None, "is missing"
    text = raw.strip()
    if _DATE_TIME.fullmatch(text) is None:
        return None, f"{raw[:40]!r} is not an RFC 3339 time with an offset"
    try:
        when = datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError):  # 25:00, a 30th of February, past the calendar
        return None, f"{raw[:40]!r} is not a valid time"
    if when <= now:
        return None, f"{raw[:40]!r} is not in the future"
    if when > now + MAX_CALLBACK_AHEAD:
        return None, f"{raw[:40]!r} is more than 30 days ahead"
    return when, ""
