"""API errors: ``{"error": {"code", "message"[, "field"]}}`` with the right status.

Everything raised below the edge is translated here: validation failures name the field,
a database that cannot be reached is a 503 with ``Retry-After``, and anything unexpected is
a logged 500 whose body says nothing about the internals.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, jsonify
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from gateway.db import DatabaseUnavailable
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
        return ApiError(400, "validation_error", "the request body must be a JSON object "
                        "(and Content-Type: application/json)", field="body")
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
    app.register_error_handler(UnicodeDecodeError, _undecodable_body)
    app.register_error_handler(RecursionError, _undecodable_body)
    app.register_error_handler(Exception, _unexpected)


async def _api_error(error: ApiError) -> Response:
    return error_response(error)


async def _schema_error(error: RequestSchemaValidationError) -> Response:
    cause = error.validation_error
    if isinstance(cause, ValidationError):
        return error_response(describe_validation(cause))
    return error_response(ApiError(400, "validation_error",
                                   "the request body must be a JSON object"))


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
    log.warning("http.database_unavailable", error=str(error))
    return error_response(ApiError(
        503, "service_unavailable", "the database is unreachable; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)}))


async def _unexpected(error: Exception) -> Response:
    if isinstance(error, BaseExceptionGroup):
        inner = _single_leaf(error)
        if isinstance(inner, (ApiError, DatabaseUnavailable, HTTPException)):
            handler = {ApiError: _api_error, DatabaseUnavailable: _database_unavailable,
                       HTTPException: _http_error}
            for kind, handle in handler.items():
                if isinstance(inner, kind):
                    return await handle(inner)
    log.error("http.unexpected_error", exc_info=error)
    return error_response(ApiError(500, "internal_error",
                                   "internal error; it has been logged"))


def _single_leaf(group: BaseExceptionGroup) -> BaseException:
    while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
        group = group.exceptions[0]
    return group
