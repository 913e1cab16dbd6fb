"""SIP messages (RFC 3261 §7): parse a datagram, serialise a message.

A message is an immutable record: a start line, an ordered list of ``(name, value)`` header
fields as they appeared (lines unfolded, names as written) and a body. Lookups are
case-insensitive and understand the compact forms (``v`` is Via, ``i`` Call-ID...); header
fields that hold comma-separated lists (Via, Route, Record-Route, Contact...) are split into
their elements by :meth:`SipMessage.get_all`.

Errors: anything that cannot be read as SIP raises :class:`SipParseError` (and nothing
else, whatever the bytes); the transport counts and drops such a datagram. :func:`parse`
also checks the header fields every message must carry (Via, From, To, Call-ID, CSeq), so
the layers above never meet a message without them. Numbers are read with ASCII patterns
only (``str.isdigit`` takes ``²`` or Arabic-Indic digits that ``int`` refuses or reads
otherwise). Control characters other than tab are refused anywhere in the start line and
header fields (RFC 3261 allows none there), so any value of a parsed message can be copied
into a message we send: encoding it cannot fail. Serialising writes ``Content-Length``
itself, from the body.
"""

from __future__ import annotations

import re

import attrs

SIP_VERSION = "SIP/2.0"
MAX_DATAGRAM = 65535

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
           "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
           "v": "via", "o": "event", "r": "refer-to", "b": "referred-by", "u": "allow-events",
           "x": "session-expires", "y": "identity", "a": "accept-contact",
           "j": "reject-contact", "d": "request-disposition"}
# Spellings that str.title() gets wrong.
CANONICAL = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
             "mime-version": "MIME-Version", "rack": "RAck", "rseq": "RSeq"}
# Header fields whose value is a comma-separated list (RFC 3261 §7.3.1). Authorization and
# WWW-Authenticate are not: their commas separate parameters.
LIST_HEADERS = frozenset({"via", "route", "record-route", "contact", "allow", "supported",
                          "require", "proxy-require", "unsupported", "accept"})
REQUIRED = ("via", "from", "to", "call-id", "cseq")
# One string object per common name, whatever spelling a message used (a live call keeps
# several messages: their names share these).
_SHARED = {name: name for name in (
    *COMPACT.values(), *CANONICAL, *LIST_HEADERS, "max-forwards", "user-agent", "min-se",
    "proxy-authenticate", "proxy-authorization", "authorization")}
# Once CRLF is LF: every C0 control but tab and LF (the line ends), so a lone CR too; DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")  # RFC 3261 §25.1 token
_CSEQ = re.compile(r"([0-9]{1,10})[ \t]+([A-Za-z0-9.!%*_+`'~-]+)")
_LENGTH = re.compile(r"[0-9]{1,10}")
_STATUS = re.compile(r"[1-6][0-9][0-9]")
_METHOD = re.compile(r"[A-Z]+")
_UNSAFE = re.compile(r"[\r\n\0]")


class SipParseError(ValueError):
    """The bytes are not a SIP message this UA can use."""


def canonical(name: str) -> str:
    """The usual spelling of a header name: ``v`` → ``Via``, ``call-id`` → ``Call-ID``."""
    key = normalise(name)
    return CANONICAL.get(key, key.title())


def normalise(name: str) -> str:
    key = name.strip().lower()
    return COMPACT.get(key) or _SHARED.get(key, key)


def split_list(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets."""
    if "," not in value:  # nearly every value: one element
        value = value.strip()
        return [value] if value else []
    parts: list[str] = []
    current: list[str] = []
    quoted, angle, escaped = False, False, False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "<>":
            angle = char == "<"
        elif char == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


@attrs.frozen
class SipMessage:
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    # Each header field's normalised name, in order, built on the first lookup (a message
    # is read a dozen times on its way through the stack; a tuple, not a dict of lists:
    # a live call keeps several messages, and this is a fifth of their size).
    _keys: tuple[str, ...] | None = attrs.field(
        default=None, init=False, eq=False, hash=False, repr=False)

    def get(self, name: str) -> str | None:
        """The first value of a header field (the first element, for list headers)."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        keys = self._keys
        if keys is None:
            keys = tuple(normalise(field) for field, _ in self.headers)
            object.__setattr__(self, "_keys", keys)
        key = normalise(name)
        if key not in keys:
            return []
        values = [field[1] for field, k in zip(self.headers, keys, strict=True) if k == key]
        if key in LIST_HEADERS:
            return [part for value in values for part in split_list(value)]
        return values

    def start_line(self) -> str:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The datagram: start line, header fields (Content-Length last, from the body)."""
        lines = [self.start_line()]
        for name, value in self.headers:
            if normalise(name) != "content-length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        if _UNSAFE.search("".join(lines)):
            # Values are built from our own data; one carrying a line break would let it
            # inject header fields, so it is a bug, not something to send.
            raise ValueError("a SIP header field cannot contain CR, LF or NUL")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.get("cseq") or "")


@attrs.frozen
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@attrs.frozen
class SipResponse(SipMessage):
    status: int = 0
    reason: str = ""

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


def parse_cseq(value: str) -> tuple[int, str]:
    match = _CSEQ.fullmatch(value.strip())
    if match is None or int(match[1]) >= 2**31:
        raise SipParseError(f"bad CSeq {value[:40]!r}")
    return int(match[1]), match[2].upper()


def parse(data: bytes) -> SipRequest | SipResponse:
    """Read one datagram. Raises :class:`SipParseError` on anything unusable."""
    if len(data) > MAX_DATAGRAM:
        raise SipParseError("datagram too large")
    data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(separator)
        if found:
            break
    else:
        raise SipParseError("no end of header fields")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header fields are not UTF-8") from exc
    text = text.replace("\r\n", "\n")
    if _CONTROL.search(text):
        raise SipParseError("control character in the start line or a header field")
    lines = text.split("\n")
    start, fields = lines[0], _unfold(lines[1:])
    headers = tuple(fields)
    length = [value for name, value in headers if normalise(name) == "content-length"]
    if length:
        if _LENGTH.fullmatch(length[0]) is None:
            raise SipParseError(f"bad Content-Length {length[0][:20]!r}")
        size = int(length[0])
        if size > len(body):
            raise SipParseError("body shorter than Content-Length")
        body = body[:size]
    message = _start(start, headers, body)
    for name in REQUIRED:
        if message.get(name) is None:
            raise SipParseError(f"missing {canonical(name)} header")
    message.cseq  # noqa: B018 - validates the CSeq
    return message


def _unfold(lines: list[str]) -> list[tuple[str, str]]:
    fields: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipParseError("continuation line before any header field")
            fields[-1][1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or _TOKEN.fullmatch(name) is None:
            raise SipParseError(f"bad header line {line[:40]!r}")
        fields.append([name, value.strip()])
    return [(name, value) for name, value in fields]


def _start(line: str, headers: tuple[tuple[str, str], ...],
           body: bytes) -> SipRequest | SipResponse:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SipParseError(f"bad start line {line[:60]!r}")
    if parts[0] == SIP_VERSION:
        if _STATUS.fullmatch(parts[1]) is None:
            raise SipParseError(f"bad status code {parts[1][:10]!r}")
        return SipResponse(headers, body, status=int(parts[1]), reason=parts[2])
    method, uri, version = parts
    if version != SIP_VERSION or _METHOD.fullmatch(method) is None or not uri:
        raise SipParseError(f"bad request line {line[:60]!r}")
    return SipRequest(headers, body, method=method, uri=uri)
