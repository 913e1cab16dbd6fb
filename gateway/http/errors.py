"""API errors: ``{"error": {"code", "message"[, "field"]}}`` with the right status.

Everything raised below the edge is translated here: validation failures name the field,
a value the database cannot store is a 400 naming it when the request shows which (the
schemas bound every field first: this is the last line of defence), a database that cannot
be reached is a 503 with ``Retry-After``, and anything unexpected is a logged 500 whose body
says nothing about the internals.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, g, jsonify, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from gateway.db import DatabaseBusy, DatabaseUnavailable, InvalidValue
from gateway.logs import get_logger

log = get_logger(__name__)
RETRY_AFTER_SECONDS = 5

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 411: "length_required",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable",
    429: "rate_limited", 503: "service_unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def validation_error(field: str, message: str) -> ApiError:
    """400 naming the field: ``message`` should read well after ``field: ``."""
    return ApiError(400, "validation_error", f"{field}: {message}", field=field)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def error_response(error: ApiError) -> Response:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    response = jsonify({"error": body})
    response.status_code = error.status
    response.headers.update(error.headers)
    if error.status == 413:
        # Sent before the whole body was read: the connection cannot carry another request.
        response.headers["Connection"] = "close"
    return response


def describe_validation(exc: ValidationError) -> ApiError:
    """The first problem of a pydantic error, as a 400 that names its field."""
    first = exc.errors()[0]
    if not first["loc"]:
        return validation_error("body", "must be a JSON object (with Content-Type: "
                                "application/json)")
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        message = "is required"
    elif first["type"] == "extra_forbidden":
        message = "is not a known field"
    else:
        message = first["msg"].removeprefix("Value error, ")
        given = first.get("input")
        if isinstance(given, (str, int, float)) and len(str(given)) <= 100:
            message += f" (got {given!r})"
    return validation_error(field, message)


def register(app: Quart) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(RequestSchemaValidationError, _schema_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseUnavailable, _database_unavailable)
    app.register_error_handler(InvalidValue, _invalid_value)
    app.register_error_handler(UnicodeDecodeError, _undecodable_body)
    app.register_error_handler(RecursionError, _undecodable_body)
    app.register_error_handler(Exception, _unexpected)


async def _api_error(error: ApiError) -> Response:
    return error_response(error)


async def _schema_error(error: RequestSchemaValidationError) -> Response:
    cause = error.validation_error
    if isinstance(cause, ValidationError):
        return error_response(describe_validation(cause))
    return error_response(validation_error("body", "must be a JSON object"))


async def _undecodable_body(error: Exception) -> Response:
    # Raised while a JSON body is decoded: not UTF-8, or nested past the parser's depth.
    reason = "is not UTF-8" if isinstance(error, UnicodeDecodeError) else "nests too deeply"
    return error_response(validation_error("body", f"{reason}; send a JSON object"))


async def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 400:  # Quart's only 400 of its own: a JSON body that does not parse
        return error_response(validation_error("body", "is not valid JSON"))
    code = _HTTP_CODES.get(status, "http_error")
    message = {
        404: "no such endpoint",
        405: "method not allowed on this endpoint",
        413: "the request body is too large",
    }.get(status, error.description or error.name)
    api_error = ApiError(status, code, message)
    response = error_response(api_error)
    if status == 405 and error.get_headers():
        response.headers.update({k: v for k, v in error.get_headers() if k.lower() == "allow"})
    return response


async def _database_unavailable(error: DatabaseUnavailable) -> Response:
    if isinstance(error, DatabaseBusy):  # the database answers; this process is saturated
        log.warning("http.database_busy", error=str(error))
        message = "the server is busy (every database connection is in use); retry shortly"
    else:
        log.warning("http.database_unavailable", error=str(error))
        message = "the database is unreachable; retry shortly"
    return error_response(ApiError(503, "service_unavailable", message,
                                   headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))


def note_inputs(**inputs: Any) -> None:
    """Record the request's validated inputs (those not in the query string, path or JSON
    body, e.g. multipart fields), so a value the database refuses can be named."""
    g.inputs = {**g.get("inputs", {}), **inputs}


async def _request_inputs() -> dict[str, Any]:
    inputs: dict[str, Any] = dict(request.view_args or {})
    inputs.update((name, value) for name, value in request.args.items())
    body = await request.get_json(silent=True) if request.is_json else None
    if isinstance(body, dict):
        inputs.update(body)
    inputs.update(g.get("inputs", {}))
    return inputs


def _field_of(error: InvalidValue, inputs: dict[str, Any]) -> str | None:
    """The one input whose value is the refused one, if the request shows which."""
    if error.column in inputs:
        return error.column
    if error.value is None:
        return None
    matches = set()
    for name, given in inputs.items():
        if isinstance(given, date):  # asyncpg shows a datetime argument as its repr
            if error.value.startswith(("datetime.", given.isoformat()[:10])):
                matches.add(name)
        elif isinstance(given, (str, int, float)) and not isinstance(given, bool):
            if str(given) == error.value:
                matches.add(name)
    return matches.pop() if len(matches) == 1 else None


async def _invalid_value(error: InvalidValue) -> Response:
    # A schema bound is missing if this is ever logged: the value got past validation.
    field = _field_of(error, await _request_inputs())
    log.warning("http.invalid_value", field=field, reason=error.reason,
                argument=error.argument)
    message = f"is out of the range the database can store ({error.reason})"
    if field is None:
        return error_response(ApiError(400, "validation_error", f"a value {message}"))
    return error_response(validation_error(field, message))


async def _unexpected(error: Exception) -> Response:
    if isinstance(error, BaseExceptionGroup):
        inner = _single_leaf(error)
        if isinstance(inner, ApiError):
            return await _api_error(inner)
        if isinstance(inner, DatabaseUnavailable):
            return await _database_unavailable(inner)
        if isinstance(inner, InvalidValue):
            return await _invalid_value(inner)
        if isinstance(inner, HTTPException):
            return await _http_error(inner)
    log.error("http.unexpected_error", exc_info=error)
    return error_response(ApiError(500, "internal_error",
                                   "internal error; it has been logged"))


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
        leaf = leaf.exceptions[0]
    return leaf
