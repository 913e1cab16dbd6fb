"""``GET /api/v1/campaigns/{id}/contacts.csv|.jsonl`` and ``.../calls.csv|.jsonl``: every
contact or call attempt of a campaign, streamed.

The rows are the pages' (``GET .../contacts``, ``GET .../calls``): the same fields, values
and order, and the contacts' ``status`` filter (the calls' exports take ``outcome``). JSON
lines keep each page object's shape; CSV has a header, a column per field and a
``custom_fields.<name>`` column per custom field of the campaign (gateway/export_csv.py:
no cell a spreadsheet would evaluate).

The body is written a chunk at a time as the rows are read (gateway/store/exports.py), so
memory stays constant whatever the campaign's size. The first chunk is read before the
answer starts: an unknown campaign is a 404 and an unreachable database a 503. Once the
headers are sent the status cannot change: a database failure or the campaign's deletion
later ends the connection without the chunked body's last chunk, which HTTP clients
report as an incomplete body (never a complete-looking, shorter file).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio
from pydantic_core import to_json
from quart import Blueprint, Response, make_response
from quart_schema import validate_querystring

from gateway.db import DatabaseError
from gateway.export_csv import CsvTable, Kind
from gateway.http.context import principal, services
from gateway.http.errors import not_found
from gateway.http.openapi import API, errors, raw_response
from gateway.http.schemas import CallExportQuery, ContactExportQuery
from gateway.logs import get_logger
from gateway.store import exports
from gateway.store.exports import CALL_FIELDS, CONTACT_FIELDS, CUSTOM_FIELDS, Chunk

bp = Blueprint("exports", __name__)
log = get_logger(__name__)

# The formats: their Content-Type, and the media type the OpenAPI document names.
_MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
# Outside text in CSV cells: escaped (export_csv). The phone numbers keep their "+".
_TEXT_FIELDS = frozenset({"sip_call_id", "agent_sip_call_id", "disposition_notes"})
_PHONE_FIELDS = frozenset({"phone_number"})
Encode = Callable[[Chunk], bytes]


def _kind(field: str) -> Kind:
    if field in _PHONE_FIELDS:
        return Kind.PHONE
    return Kind.TEXT if field in _TEXT_FIELDS else Kind.PLAIN


def _described(what: str, media: str) -> Callable[[Any], Any]:
    """The 200 of an export in the OpenAPI document."""
    if media == "csv":
        text = (f"CSV (RFC 4180, UTF-8): a header, then one line per {what}. Cells of "
                "outside text that start with = + - @, a tab or CR get a leading "
                "apostrophe; phone numbers are quoted and keep their +.")
    else:
        text = f"JSON lines: one object per {what}, as the page shows it."
    return raw_response(200, f"{text} Sent as an attachment, streamed: a failure after "
                             "the first bytes ends the body short (incomplete).",
                        _MEDIA[media].split(";")[0])


@bp.get("/campaigns/<uuid:campaign_id>/contacts.csv")
@validate_querystring(ContactExportQuery)
@_described("contact", "csv")
@errors(400, 404, *API)
async def export_contacts_csv(campaign_id: uuid.UUID,
                              query_args: ContactExportQuery) -> Response:
    """Every contact of the campaign (optionally of one status), in CSV order."""
    return await _contacts(campaign_id, query_args.status, "csv")


@bp.get("/campaigns/<uuid:campaign_id>/contacts.jsonl")
@validate_querystring(ContactExportQuery)
@_described("contact", "jsonl")
@errors(400, 404, *API)
async def export_contacts_jsonl(campaign_id: uuid.UUID,
                                query_args: ContactExportQuery) -> Response:
    """Every contact of the campaign (optionally of one status), in CSV order."""
    return await _contacts(campaign_id, query_args.status, "jsonl")


@bp.get("/campaigns/<uuid:campaign_id>/calls.csv")
@validate_querystring(CallExportQuery)
@_described("call attempt", "csv")
@errors(400, 404, *API)
async def export_calls_csv(campaign_id: uuid.UUID, query_args: CallExportQuery) -> Response:
    """Every call attempt of the campaign (optionally of one outcome), in the page's
    order."""
    return await _calls(campaign_id, query_args.outcome, "csv")


@bp.get("/campaigns/<uuid:campaign_id>/calls.jsonl")
@validate_querystring(CallExportQuery)
@_described("call attempt", "jsonl")
@errors(400, 404, *API)
async def export_calls_jsonl(campaign_id: uuid.UUID, query_args: CallExportQuery) -> Response:
    """Every call attempt of the campaign (optionally of one outcome), in the page's
    order."""
    return await _calls(campaign_id, query_args.outcome, "jsonl")


async def _contacts(campaign_id: uuid.UUID, status: str | None, media: str) -> Response:
    db = services().db
    source = await exports.contacts_source(db, principal().account.id, campaign_id)
    if source is None:
        raise not_found("campaign")
    head, encode = encoder("contacts", media, source.custom_field_names)
    return await _stream(campaign_id, "contacts", media, head, encode,
                         exports.contact_chunks(db, source, status))


async def _calls(campaign_id: uuid.UUID, outcome: str | None, media: str) -> Response:
    db = services().db
    if not await exports.campaign_owned(db, principal().account.id, campaign_id):
        raise not_found("campaign")
    head, encode = encoder("calls", media)
    return await _stream(campaign_id, "calls", media, head, encode,
                         exports.call_chunks(db, campaign_id, outcome))


async def _stream(campaign_id: uuid.UUID, what: str, media: str, head: bytes, encode: Encode,
                  chunks: AsyncIterator[Chunk]) -> Response:
    account_id = str(principal().account.id)
    started = trio.current_time()
    try:  # before the answer starts: a failure is still an error status
        first = await anext(chunks, None)
    except exports.CampaignGone:
        raise not_found("campaign") from None

    async def body() -> AsyncIterator[bytes]:
        nonlocal first
        rows = 0
        try:
            data = head
            if first is not None:
                rows += len(first.rows)
                data += encode(first)
                first = None
            yield data
            async for chunk in chunks:
                rows += len(chunk.rows)
                data = encode(chunk)
                del chunk  # one chunk in memory: not held while the next one is read
                yield data
        except (DatabaseError, exports.CampaignGone) as exc:
            # Raised on, the connection ends without the last chunk: the client sees an
            # incomplete body.
            log.warning("export.cut", campaign_id=str(campaign_id), account_id=account_id,
                        what=what, rows=rows, error=f"{type(exc).__name__}: {exc}")
            raise
        except Exception:  # a bug: cut the same way, and say so
            log.error("export.failed", campaign_id=str(campaign_id), account_id=account_id,
                      what=what, rows=rows, exc_info=True)
            raise
        log.info("export.finished", campaign_id=str(campaign_id), account_id=account_id,
                 what=what, format=media, rows=rows,
                 seconds=round(trio.current_time() - started, 3))

    filename = f"campaign-{campaign_id}-{what}.{media}"
    response = await make_response(body(), 200, {
        "Content-Type": _MEDIA[media],
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    assert isinstance(response, Response)  # a body iterator makes the app's response class
    response.timeout = None  # Quart's RESPONSE_TIMEOUT would cut a long export silently
    return response


def encoder(what: str, media: str, names: tuple[str, ...] = ()) -> tuple[bytes, Encode]:
    """The body's start and the encoding of each chunk, for ``what`` ("contacts", whose
    campaign has the custom fields ``names``, or "calls") in ``media`` ("csv", "jsonl")."""
    if what == "contacts":
        return _contacts_csv(names) if media == "csv" else (b"", _contacts_jsonl(names))
    return _calls_csv() if media == "csv" else (b"", _calls_jsonl)


def _contacts_csv(names: tuple[str, ...]) -> tuple[bytes, Encode]:
    fixed = [field for field in CONTACT_FIELDS if field != "custom_fields"]
    table = CsvTable(
        (*fixed[:CUSTOM_FIELDS], *(f"custom_fields.{name}" for name in names),
         *fixed[CUSTOM_FIELDS:]),
        (*map(_kind, fixed[:CUSTOM_FIELDS]), *(Kind.TEXT for _ in names),
         *map(_kind, fixed[CUSTOM_FIELDS:])))
    end = len(CONTACT_FIELDS)

    def encode(chunk: Chunk) -> bytes:
        columns = list(zip(*chunk.rows, strict=True))
        # Each row's list of values, turned into a column per custom field.
        custom = list(zip(*chunk.custom_values, strict=True))
        return table.encode([*columns[:CUSTOM_FIELDS], *custom,
                             *columns[CUSTOM_FIELDS + 1:end]]).encode()

    return table.header().encode(), encode


def _contacts_jsonl(names: tuple[str, ...]) -> Encode:
    def encode(chunk: Chunk) -> bytes:
        lines = []
        for row, values in zip(chunk.rows, chunk.custom_values, strict=True):
            # The cursor, the row's last field, is left out.
            item = dict(zip(CONTACT_FIELDS, row, strict=False))
            item["custom_fields"] = dict(zip(names, values, strict=True))
            lines.append(to_json(item))
        lines.append(b"")  # the last line's end, without a copy of the whole chunk
        return b"\n".join(lines)

    return encode


def _calls_csv() -> tuple[bytes, Encode]:
    table = CsvTable(CALL_FIELDS, tuple(map(_kind, CALL_FIELDS)))
    end = len(CALL_FIELDS)

    def encode(chunk: Chunk) -> bytes:
        return table.encode(list(zip(*chunk.rows, strict=True))[:end]).encode()

    return table.header().encode(), encode


def _calls_jsonl(chunk: Chunk) -> bytes:
    lines = [to_json(dict(zip(CALL_FIELDS, row, strict=False))) for row in chunk.rows]
    lines.append(b"")
    return b"\n".join(lines)
