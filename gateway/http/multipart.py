"""A streaming ``multipart/form-data`` reader with byte limits that hold for chunked uploads.

Quart's form parser buffers the body and only checks ``Content-Length``; an upload sent
with chunked encoding has none. This reader consumes the body as it arrives, counts every
byte, spools file parts to a temporary file (in memory up to 1 MiB, then on disk) and stops
with 413 as soon as a limit is passed.
"""

from __future__ import annotations

import tempfile
from typing import AsyncIterable, BinaryIO

import attrs
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from gateway.http.errors import ApiError

FIELD_MAX_BYTES = 64 * 1024
MAX_PARTS = 64
# Past a limit the rest of the body is read and dropped (up to this much) so the client,
# still sending, gets the 413 instead of a reset connection.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
SPOOL_MEMORY_BYTES = 1024 * 1024


@attrs.define
class Form:
    fields: dict[str, str] = attrs.field(factory=dict)
    files: dict[str, BinaryIO] = attrs.field(factory=dict)
    file_sizes: dict[str, int] = attrs.field(factory=dict)

    def close(self) -> None:
        for spooled in self.files.values():
            spooled.close()


def boundary_of(content_type: str | None) -> bytes:
    mimetype, options = parse_options_header(content_type or "")
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise ApiError(415, "unsupported_media_type",
                       "send the campaign as multipart/form-data with a 'contacts' CSV file part")
    return options["boundary"].encode("latin-1")


def _too_large(what: str, limit: int) -> ApiError:
    return ApiError(413, "payload_too_large",
                    f"{what} is larger than the limit of {limit} bytes ({limit / 1048576:g} MiB)",
                    field="contacts" if what.startswith("the contacts") else None)


async def read_form(body: AsyncIterable[bytes], content_type: str | None, *,
                    file_max_bytes: int, body_max_bytes: int) -> Form:
    """Read the whole multipart body. The caller owns the returned form and must close it.

    Raises :class:`ApiError` (400 malformed or duplicate part, 413 too large, 415 not
    multipart); nothing stays open when it does.
    """
    decoder = MultipartDecoder(boundary_of(content_type), max_parts=MAX_PARTS)
    form = Form()
    received = 0
    chunks = body.__aiter__()
    try:
        part: Field | File | None = None
        value = bytearray()
        finished = False
        while not finished:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                chunk = None
            if chunk is not None:
                received += len(chunk)
                if received > body_max_bytes:
                    raise _too_large("the request body", body_max_bytes)
            try:
                decoder.receive_data(chunk)
                event = decoder.next_event()
                while not isinstance(event, NeedData):
                    if isinstance(event, (Field, File)):
                        part, value = _open_part(form, event), bytearray()
                    elif isinstance(event, Data):
                        _write_part(form, part, value, event.data, file_max_bytes)
                        if not event.more_data and isinstance(part, Field):
                            form.fields[part.name] = _text(part.name, value)
                    elif isinstance(event, Epilogue):
                        finished = True
                        break
                    event = decoder.next_event()
            except ValueError as exc:  # werkzeug's word for a malformed body
                raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
            if chunk is None and not finished:
                raise ApiError(400, "bad_request",
                               "malformed multipart body: it ended before the closing boundary")
        return form
    except ApiError as error:
        form.close()
        if error.status == 413:
            await _drain(chunks)
        raise
    except BaseException:
        form.close()
        raise


def _open_part(form: Form, event: Field | File):
    name = event.name
    if name in form.fields or name in form.files:
        raise ApiError(400, "validation_error", f"{name}: given more than once", field=name)
    if isinstance(event, File):
        form.files[name] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
        form.file_sizes[name] = 0
    return event


def _write_part(form: Form, part, value: bytearray, data: bytes, file_max_bytes: int) -> None:
    if isinstance(part, File):
        form.file_sizes[part.name] += len(data)
        if form.file_sizes[part.name] > file_max_bytes:
            raise _too_large(f"the {part.name} file" if part.name != "contacts"
                             else "the contacts file", file_max_bytes)
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
        raise ApiError(400, "validation_error", f"{name}: is not UTF-8 text",
                       field=name) from None


async def _drain(chunks) -> None:
    dropped = 0
    try:
        async for chunk in chunks:
            dropped += len(chunk)
            if dropped > DRAIN_MAX_BYTES:
                return
    except Exception:  # the client went away or the body errored: nothing left to drain
        return
