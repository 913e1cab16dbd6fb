"""Header field values: Via, name-addr (From/To/Contact/Route), SIP URIs, X- headers.

Parsers raise :class:`~gateway.telephony.sip.message.SipParseError` on values they cannot
read. The ``X-`` header builders are the one place contact data enters a SIP message:
names are reduced to token characters and values percent-encoded, so no CR, LF or other
control character from a CSV cell can reach the wire.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

import attrs

from gateway.telephony.sip.message import SipParseError, SipRequest, SipResponse

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
