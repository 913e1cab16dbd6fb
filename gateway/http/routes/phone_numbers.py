"""``/api/v1/phone-numbers``: the caller IDs campaigns dial from."""

from __future__ import annotations

import uuid

import attrs
from quart import Blueprint, Response
from quart_schema import document_response, validate_querystring, validate_request

from gateway.db import UniqueViolation
from gateway.http.context import no_content, page_fields, principal, respond, services
from gateway.http.errors import ApiError, not_found
from gateway.http.openapi import API, errors, raw_response
from gateway.http.schemas import (
    PageQuery,
    PhoneNumberCreate,
    PhoneNumberOut,
    PhoneNumberPage,
    PhoneNumberUpdate,
)
from gateway.store import phone_numbers
from gateway.store.phone_numbers import PhoneNumber

bp = Blueprint("phone_numbers", __name__)


def _out(number: PhoneNumber) -> PhoneNumberOut:
    return PhoneNumberOut(**attrs.asdict(number))


@bp.post("/phone-numbers")
@validate_request(PhoneNumberCreate)
@document_response(PhoneNumberOut, 201)
@errors(400, 409, 413, *API)
async def create_phone_number(data: PhoneNumberCreate) -> Response:
    try:
        number = await phone_numbers.create(services().db, principal().account.id,
                                            **data.model_dump())
    except UniqueViolation:
        raise ApiError(409, "conflict", f"number: {data.number} is already in your account",
                       field="number") from None
    return respond(_out(number), 201)


@bp.get("/phone-numbers")
@validate_querystring(PageQuery)
@document_response(PhoneNumberPage)
@errors(400, *API)
async def list_phone_numbers(query_args: PageQuery) -> Response:
    page = await phone_numbers.page(services().db, principal().account.id, query_args.page)
    return respond(PhoneNumberPage(data=[_out(n) for n in page.items], **page_fields(page)))


@bp.get("/phone-numbers/<uuid:number_id>")
@document_response(PhoneNumberOut)
@errors(404, *API)
async def get_phone_number(number_id: uuid.UUID) -> Response:
    number = await phone_numbers.get(services().db, principal().account.id, number_id)
    if number is None:
        raise not_found("phone number")
    return respond(_out(number))


@bp.patch("/phone-numbers/<uuid:number_id>")
@validate_request(PhoneNumberUpdate)
@document_response(PhoneNumberOut)
@errors(400, 404, 413, *API)
async def update_phone_number(number_id: uuid.UUID, data: PhoneNumberUpdate) -> Response:
    changes = data.model_dump(include=data.model_fields_set)
    number = await phone_numbers.update(services().db, principal().account.id, number_id,
                                        changes)
    if number is None:
        raise not_found("phone number")
    return respond(_out(number))


@bp.delete("/phone-numbers/<uuid:number_id>")
@raw_response(204, "Deleted (soft: campaigns keep their history).")
@errors(404, *API)
async def delete_phone_number(number_id: uuid.UUID) -> Response:
    if not await phone_numbers.delete(services().db, principal().account.id, number_id):
        raise not_found("phone number")
    return no_content()
