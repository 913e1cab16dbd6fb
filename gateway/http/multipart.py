"""A streaming ``multipart/form-data`` reader with byte limits that hold for chunked uploads.

Quart's form parser buffers the body and only checks ``Content-Length``; an upload sent
with chunked encoding has none. This reader consumes the body as it arrives, counts every
byte, spools file parts to a temporary file (in memory up to 1 MiB, then on disk) and stops
with 413 as soon as a limit is passed.

It is total: whatever the Content-Type parameters and the bytes, it returns a form or
raises :class:`ApiError` (400 malformed, 413 too large, 415 not multipart), each naming the
problem. Parts are checked as they open, against the names the caller expects, so an
unknown part or a file where text belongs is refused before its bytes are stored.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Collection
from typing import BinaryIO, cast

import attrs
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
    NeedData,
    Preamble,
    State,
)

from gateway.http.errors import ApiError, validation_error

FIELD_MAX_BYTES = 64 * 1024
MAX_PARTS = 64
# A part's header block, and any text before the first boundary: more than this is not a
# form a client means to send (and would otherwise be held in memory whole).
HEADERS_MAX_BYTES = 16 * 1024
NAME_MAX_CHARS = 100
# Past a limit the rest of the body is read and dropped (up to this much) so the client,
# still sending, gets the answer instead of a reset connection.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
SPOOL_MEMORY_BYTES = 1024 * 1024
# RFC 2046 section 5.1.1: 1 to 70 of these characters, the last one not a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_NOT_MULTIPART = ("send the campaign as multipart/form-data with a 'contacts' CSV file part")


@attrs.define
class Form:
    fields: dict[str, str] = attrs.field(factory=dict)
    files: dict[str, BinaryIO] = attrs.field(factory=dict)
    file_sizes: dict[str, int] = attrs.field(factory=dict)

    def close(self) -> None:
        for spooled in self.files.values():
            spooled.close()


def _bad_body(problem: str) -> ApiError:
    return ApiError(400, "bad_request", f"malformed multipart body: {problem}")


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a Content-Type header (RFC 2231 ``boundary*=`` included:
    werkzeug decodes it), or the 415/400 that says what is wrong with the header."""
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", _NOT_MULTIPART)
    boundary = options.get("boundary")
    if not boundary:
        raise ApiError(400, "bad_request", "Content-Type: multipart/form-data needs a "
                       "boundary parameter (multipart/form-data; boundary=...)")
    if not _BOUNDARY.fullmatch(boundary):
        raise ApiError(400, "bad_request", "Content-Type: the boundary must be 1 to 70 "
                       "letters, digits, spaces or '()+_,-./:=? and not end with a space "
                       "(RFC 2046)")
    return boundary.encode("ascii")


def _too_large(what: str, limit: int, field: str | None = None) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"{what} is larger than the limit of {limit} bytes ({limit / 1048576:g} MiB)",
                    field=field)


async def read_form(body: AsyncIterable[bytes], content_type: str | None, *,
                    text_fields: Collection[str], file_fields: Collection[str],
                    file_max_bytes: int, body_max_bytes: int) -> Form:
    """Read the whole multipart body. The caller owns the returned form and must close it.

    Only parts named in ``text_fields`` (plain values) and ``file_fields`` (parts with a
    filename) are accepted. Raises :class:`ApiError` (400 malformed, unnamed, unknown,
    misplaced or duplicate part, 413 too large, 415 not multipart); nothing stays open when
    it does, and the rest of the body is drained so that the client reads the answer.
    """
    decoder = MultipartDecoder(boundary_of(content_type), max_parts=MAX_PARTS)
    names = _Names(frozenset(text_fields), frozenset(file_fields))
    form = Form()
    received, ended = 0, False
    chunks = body.__aiter__()
    try:
        part: Field | File | None = None
        value = bytearray()
        finished = False
        while not finished:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                chunk, ended = None, True
            if chunk is not None:
                received += len(chunk)
                if received > body_max_bytes:
                    raise _too_large("the request body", body_max_bytes)
            try:
                decoder.receive_data(chunk)
                event = decoder.next_event()
                while not isinstance(event, NeedData):
                    if isinstance(event, (Field, File)):
                        part, value = _open_part(form, names, event), bytearray()
                    elif isinstance(event, Data):
                        assert part is not None  # the decoder sends Data only inside a part
                        _write_part(form, part, value, event.data, file_max_bytes)
                        if not event.more_data and isinstance(part, Field):
                            form.fields[part.name] = _text(part.name, value)
                    elif isinstance(event, Epilogue):
                        finished = True
                        break
                    elif isinstance(event, Preamble) and len(event.data) > HEADERS_MAX_BYTES:
                        raise _too_much_framing(State.PREAMBLE)
                    event = decoder.next_event()
            except UnicodeDecodeError:  # a ValueError too: the header block's bytes
                raise _bad_body("a part's headers are not UTF-8") from None
            except RequestEntityTooLarge:  # werkzeug's max_parts
                raise ApiError(413, "payload_too_large",
                               f"the form has more than {MAX_PARTS} parts") from None
            except ValueError as exc:  # werkzeug's word for a malformed body
                raise _bad_body(_decoder_problem(exc)) from None
            if not finished:
                _check_pending(decoder)
            if chunk is None and not finished:
                raise _bad_body("it ended before the closing boundary")
        return form
    except ApiError as error:
        form.close()
        if not ended and not await _drain(chunks):
            error.headers["Connection"] = "close"
        raise
    except BaseException:
        form.close()
        raise


@attrs.frozen
class _Names:
    text: frozenset[str]
    files: frozenset[str]


def _decoder_problem(exc: ValueError) -> str:
    text = str(exc)
    if text.startswith("Invalid form-data cannot parse beyond State.PREAMBLE"):
        return "no boundary line (--boundary) was found; is the boundary the header's?"
    if text.startswith("Invalid form-data"):
        return "it ended before the closing boundary"
    if "Content-Disposition" in text:
        return "a part has no Content-Disposition header (form-data; name=\"...\")"
    return text[:200]


def _too_much_framing(state: State) -> ApiError:
    where = "before the first boundary" if state == State.PREAMBLE else "in one part's headers"
    return _bad_body(f"more than {HEADERS_MAX_BYTES} bytes {where}")


def _check_pending(decoder: MultipartDecoder) -> None:
    # What the decoder holds while it waits for more: a header block or the preamble, which
    # it keeps whole until their end is found (file data is handed out as it comes). The
    # same limits are checked on complete ones, so the answer does not depend on chunking.
    if decoder.state in (State.PREAMBLE, State.PART) and len(decoder.buffer) > HEADERS_MAX_BYTES:
        raise _too_much_framing(decoder.state)


def _open_part(form: Form, names: _Names, event: Field | File) -> Field | File:
    if sum(len(key) + len(value) + 4 for key, value in event.headers.items()) > HEADERS_MAX_BYTES:
        raise _too_much_framing(State.PART)
    name = event.name
    if not name:
        raise _bad_body("a part has no name (Content-Disposition: form-data; name=\"...\")")
    if len(name) > NAME_MAX_CHARS:
        raise _bad_body(f"a part's name is longer than {NAME_MAX_CHARS} characters")
    if name not in names.text and name not in names.files:
        raise validation_error(name, "is not a known field")
    if name in form.fields or name in form.files:
        raise validation_error(name, "given more than once")
    if isinstance(event, File):
        if name not in names.files:
            raise validation_error(name, "must be a text field, not a file "
                                         f"(curl -F {name}=value)")
        # A binary file (mode w+b); typeshed types it as IO[bytes], not BinaryIO.
        form.files[name] = cast(BinaryIO,
                                tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))
        form.file_sizes[name] = 0
    elif name in names.files:
        raise validation_error(name, f"must be a file part (curl -F {name}=@file.csv)")
    return event


def _write_part(form: Form, part: Field | File, value: bytearray, data: bytes,
                file_max_bytes: int) -> None:
    if isinstance(part, File):
        form.file_sizes[part.name] += len(data)
        if form.file_sizes[part.name] > file_max_bytes:
            raise _too_large(f"the {part.name} file", file_max_bytes, field=part.name)
        form.files[part.name].write(data)
    else:
        value.extend(data)
        if len(value) > FIELD_MAX_BYTES:
            raise ApiError(413, "payload_too_large",
                           f"{part.name}: longer than {FIELD_MAX_BYTES} bytes", field=part.name)


def _text(name: str, value: bytearray) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise validation_error(name, "is not UTF-8 text") from None


async def _drain(chunks: AsyncIterator[bytes]) -> bool:
    """Read and drop the rest of the body; whether it ended (so the connection can carry
    another request) within ``DRAIN_MAX_BYTES``."""
    dropped = 0
    try:
        async for chunk in chunks:
            dropped += len(chunk)
            if dropped > DRAIN_MAX_BYTES:
                return False
    except Exception:  # the client went away or the body errored: nothing left to drain
        return False
    return True
