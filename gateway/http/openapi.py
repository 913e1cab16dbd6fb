"""The OpenAPI document: every response an operation can send, errors included.

quart-schema documents the success bodies given with ``document_response``; the errors a
route can answer are declared next to it with :func:`errors` (each is the one ``ErrorOut``
shape), responses without a JSON body (204, the SSE stream) with :func:`raw_response`, and
a second media type of a request body (JSON or a form) with :func:`also_accepts`.
A client generator then sees every status, and the schemathesis suite checks each answer
against its documented schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from quart_schema import DataSource, document_response
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import Rule
from werkzeug.routing.converters import BaseConverter, UUIDConverter

from gateway.http.errors import RETRY_AFTER_SECONDS
from gateway.http.schemas import ErrorOut

F = TypeVar("F", bound=Callable[..., Any])
_RAW_RESPONSES = "_gateway_raw_responses"
_OTHER_REQUESTS = "_gateway_other_request_bodies"

ERROR_DESCRIPTIONS = {
    400: "Invalid input: `error.field` names it and the message starts with it.",
    401: "Missing or invalid API key (`Authorization: Bearer <api key>`).",
    404: "No such object in this account (another account's objects are not found either).",
    409: ("The object's state does not allow it (the message names the current status); on "
          "a POST, also an Idempotency-Key used for another request "
          "(`idempotency_key_reused`) or still in progress (`idempotency_key_in_progress`)."),
    413: "The request body, the CSV file or a form field is over its limit.",
    415: "The request body is not of the documented media type.",
    503: "PostgreSQL is unreachable: retry after `Retry-After` seconds.",
}
# Every /api/v1 operation: the key is checked and the database is asked.
API = (401, 503)


def errors(*statuses: int) -> Callable[[F], F]:
    """Document the error answers (``ErrorOut``) a route can send, besides its success."""

    def decorator(func: F) -> F:
        for status in statuses:
            func = document_response(ErrorOut, status)(func)
        return func

    return decorator


def raw_response(status: int, description: str, media_type: str | None = None,
                 schema: dict | None = None) -> Callable[[F], F]:
    """Document a response that is not a JSON model (a 204, an event stream)."""

    def decorator(func: F) -> F:
        documented: dict[str, Any] = {"description": description}
        if media_type is not None:
            documented["content"] = {media_type: {"schema": schema or {"type": "string"}}}
        setattr(func, _RAW_RESPONSES, {**getattr(func, _RAW_RESPONSES, {}), status: documented})
        return func

    return decorator


def also_accepts(model: type, source: DataSource) -> Callable[[F], F]:
    """Document another media type of the request body, besides ``document_request``'s:
    for a route that reads either, as the Content-Type says."""

    def decorator(func: F) -> F:
        setattr(func, _OTHER_REQUESTS, [*getattr(func, _OTHER_REQUESTS, []), (model, source)])
        return func

    return decorator


class GatewayOpenAPI(OpenAPIProvider):
    """quart-schema's provider plus the raw responses, error descriptions, the
    ``Retry-After`` header of 503s and uuid path parameters.

    The routes are fixed once the app is made, so the document is built on the first
    request only (each build was ~40 ms of the event loop: 155 ms p99 while dialing)."""

    _built: dict | None = None

    def schema(self) -> dict:
        if self._built is None:
            self._built = super().schema()
        return self._built

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, UUIDConverter):
            parameter["schema"] = {"type": "string", "format": "uuid"}
        return parameter

    def build_paths(self, rule: Rule) -> tuple[dict, dict]:
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        raw = getattr(func, _RAW_RESPONSES, {})
        bodies = [self.build_request_body(model, source)
                  for model, source in getattr(func, _OTHER_REQUESTS, [])]
        for _, definitions in bodies:
            components.update(definitions)
        for operations in paths.values():
            for operation in operations.values():
                for body, _ in bodies:
                    operation.setdefault("requestBody", {"content": {}})["content"].update(
                        body["content"])
                responses = {str(status): response
                             for status, response in operation["responses"].items()}
                responses.update({str(status): dict(response) for status, response in raw.items()})
                for status, description in ERROR_DESCRIPTIONS.items():
                    # An error's ErrorOut has no description of its own; a model that has
                    # one (/readyz's 503) keeps it.
                    if str(status) in responses and not responses[str(status)]["description"]:
                        responses[str(status)]["description"] = description
                if "503" in responses:
                    responses["503"]["headers"] = {"Retry-After": {
                        "description": f"Seconds to wait ({RETRY_AFTER_SECONDS}).",
                        "schema": {"type": "integer"}}}
                for response in responses.values():
                    response["description"] = response["description"] or "Success."
                operation["responses"] = dict(sorted(responses.items()))
        return paths, components
