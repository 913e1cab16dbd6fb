"""``/api/v1/dnc``: the account's do-not-call list, the numbers no campaign dials.

Numbers come in as a JSON list or as a CSV upload, on the same route (the Content-Type
says which), and are normalised as the campaign import normalises contacts (E.164; without
a '+', a number of the configured default region), so that a number listed in any spelling
matches the contact it is meant to stop. Number normalisation is CPU work (up to ~20 µs a
number): lists and files are normalised in a worker thread, off the event loop. Logs carry
counts, never the numbers.
"""

from __future__ import annotations

import functools

import attrs
import trio
from pydantic import ValidationError
from quart import Blueprint, Response, request
from quart_schema import DataSource, document_request, document_response, validate_querystring
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.dnc_csv import DncFileError, DncUpload, normalise_number, read_numbers
from gateway.http.context import no_content, page_fields, principal, respond, services
from gateway.http.errors import ApiError, describe_validation, validation_error
from gateway.http.multipart import read_form
from gateway.http.openapi import API, also_accepts, errors, raw_response
from gateway.http.schemas import RejectedRowOut
from gateway.http.schemas_dnc import (
    DncAdd,
    DncAdded,
    DncAddResult,
    DncEntryOut,
    DncPage,
    DncPageQuery,
    DncRejectedCounts,
    DncUploaded,
    DncUploadForm,
)
from gateway.logs import get_logger
from gateway.store import dnc
from gateway.vocabulary import DncSource

bp = Blueprint("dnc", __name__)
log = get_logger(__name__)
# Room for the multipart framing around the one file part.
FORM_OVERHEAD_BYTES = 64 * 1024
FILE_FIELDS = frozenset({"file"})
_MEDIA_TYPES = ("send the numbers as application/json ({\"numbers\": [...]}) or a CSV as "
                "multipart/form-data with a 'file' part")


@bp.post("/dnc")
@document_request(DncAdd)
@also_accepts(DncUploadForm, DataSource.FORM_MULTIPART)
@document_response(DncAddResult)
@errors(400, 413, 415, *API)
async def add_numbers() -> Response:
    """Add numbers to the do-not-call list: JSON ``{"numbers": [...]}``, or a CSV file.

    With JSON, one invalid item is a 400 naming it (``numbers[i]``) and nothing is added.
    With a CSV (``multipart/form-data``, a ``file`` part with a ``phone_number`` column),
    bad rows are reported and the valid ones added; a file without a valid row is a 400.
    """
    if request.mimetype == "multipart/form-data":
        return await _add_upload()
    if request.is_json:
        return await _add_json()
    raise ApiError(415, "unsupported_media_type", _MEDIA_TYPES)


async def _add_json() -> Response:
    svc, who = services(), principal()
    try:
        body = DncAdd.model_validate(await request.get_json())
    except ValidationError as exc:
        raise _named_items(exc) from None
    numbers = await trio.to_thread.run_sync(_normalised, body.numbers,
                                            svc.settings.contacts.default_region)
    added = await dnc.add(svc.db, who.account.id, numbers, DncSource.API)
    log.info("dnc.added", account_id=str(who.account.id), source=DncSource.API,
             items=len(body.numbers), added=added)
    return respond(DncAdded(added=added, already_listed=len(body.numbers) - added))


def _named_items(exc: ValidationError) -> ApiError:
    """The 400 of a body that does not validate, an item named ``numbers[3]``."""
    error = describe_validation(exc)
    where = exc.errors()[0]["loc"]
    if error.field is None or not any(isinstance(part, int) for part in where):
        return error
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in where)
    return validation_error(field.lstrip("."), error.message.removeprefix(f"{error.field}: "))


def _normalised(items: list[str], region: str) -> list[str]:
    """Every item as E.164, distinct, in the store's order; or the 400 naming the first
    invalid one (blocking: run in a worker thread)."""
    numbers = []
    for index, raw in enumerate(items):
        number = normalise_number(raw, region)
        if number is None:
            raise validation_error(f"numbers[{index}]", _not_a_number(raw, region))
        numbers.append(number)
    return dnc.in_lock_order(numbers)


def _e164(field: str, raw: str) -> str:
    region = services().settings.contacts.default_region
    number = normalise_number(raw, region)
    if number is None:
        raise validation_error(field, _not_a_number(raw, region))
    return number


def _not_a_number(raw: str, region: str) -> str:
    allowed = f"give E.164 (+12125550100) or a national number of {region}"
    if not raw.strip():
        return f"is blank; {allowed}"
    shown = raw if len(raw) <= 40 else raw[:40] + "…"
    how = "" if raw.lstrip().startswith("+") else f" (read as a {region} number)"
    return f"{shown!r} is not a valid phone number{how}; {allowed}"


async def _add_upload() -> Response:
    svc, who = services(), principal()
    limits = svc.settings.limits
    body_max = limits.max_csv_bytes + FORM_OVERHEAD_BYTES
    try:
        form = await read_form(request.body, request.headers.get("Content-Type"),
                               text_fields=(), file_fields=FILE_FIELDS,
                               file_max_bytes=limits.max_csv_bytes, body_max_bytes=body_max)
    except RequestEntityTooLarge:  # Content-Length alone was over the limit
        raise ApiError(413, "payload_too_large", f"the request body is larger than the "
                       f"limit of {body_max} bytes") from None
    try:
        if "file" not in form.files:
            raise validation_error("file", "is required: a CSV file with a phone_number "
                                           "column")
        upload = form.files["file"]
        upload.seek(0)
        read = functools.partial(read_numbers, upload,
                                 default_region=svc.settings.contacts.default_region)
        try:
            parsed = await trio.to_thread.run_sync(read)
        except DncFileError as exc:
            raise validation_error("file", exc.message) from None
    finally:
        form.close()
    added = await dnc.add(svc.db, who.account.id, parsed.numbers, DncSource.UPLOAD)
    log.info("dnc.uploaded", account_id=str(who.account.id), source=DncSource.UPLOAD,
             numbers=len(parsed.numbers), added=added, rejected=parsed.rows_rejected)
    return respond(_upload_report(parsed, added))


def _upload_report(parsed: DncUpload, added: int) -> DncUploaded:
    return DncUploaded(
        added=added, already_listed=len(parsed.numbers) - added,
        rows_rejected=parsed.rows_rejected,
        rejected=[RejectedRowOut(**attrs.asdict(row)) for row in parsed.rejected],
        rejected_counts=DncRejectedCounts(**parsed.rejected_counts))


@bp.get("/dnc")
@validate_querystring(DncPageQuery)
@document_response(DncPage)
@errors(400, *API)
async def list_numbers(query_args: DncPageQuery) -> Response:
    """The do-not-call list, in number order (``?number=``: that number only)."""
    only = query_args.number
    number = _e164("number", only) if only is not None and only.strip() else None
    page = await dnc.page(services().db, principal().account.id, query_args.page, number)
    return respond(DncPage(data=[DncEntryOut(**attrs.asdict(entry)) for entry in page.items],
                           **page_fields(page)))


@bp.delete("/dnc/<number>")
@raw_response(204, "Taken off the do-not-call list.")
@errors(400, 404, *API)
async def delete_number(number: str) -> Response:
    """Take a number off the do-not-call list (E.164, ``%2B``-encoded or not, or national)."""
    e164 = _e164("number", number)
    who = principal()
    if not await dnc.delete(services().db, who.account.id, e164):
        raise ApiError(404, "not_found", f"{e164} is not on the do-not-call list")
    log.info("dnc.deleted", account_id=str(who.account.id))
    return no_content()
