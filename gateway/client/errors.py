"""The SDK's exceptions: one class per HTTP status family, all under ``GatewayError``.

Every error the server answers is ``{"error": {"code", "message", "field"?}}``; the
exception carries those three, the status and the response itself::

    try:
        client.campaigns.pause(campaign_id)
    except ConflictError as exc:
        print(exc.status_code, exc.code, exc.message)   # 409 conflict cannot pause ...

Transport failures (connection refused, reset, DNS, timeouts) are ``APIConnectionError``
(``APITimeoutError`` for timeouts), raised ``from`` the httpx exception; they have no
status and no response.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Iterator

import httpx

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "ConflictError",
    "GatewayError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "ServiceUnavailableError",
    "ValidationError",
    "error_from_response",
]


class GatewayError(Exception):
    """Base of every SDK error. A status this SDK has no class for (405, 415...) raises
    this class itself.

    ``status_code``: the HTTP status (None when no response came back).
    ``code``: the server's machine-readable code (``conflict``, ``validation_error``...).
    ``message``: the server's human-readable message.
    ``field``: the input the error is about, on 400s (else None).
    ``retry_after``: seconds from a ``Retry-After`` header (503, 429), else None.
    ``response``: the ``httpx.Response`` (None for transport failures).
    """

    def __init__(self, message: str, *, status_code: int | None = None,
                 code: str = "error", field: str | None = None,
                 response: httpx.Response | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.field = field
        self.response = response
        self.retry_after = retry_after

    def __str__(self) -> str:
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{self.code}: {self.message}{status}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status_code={self.status_code!r}, code={self.code!r}, "
                f"message={self.message!r}, field={self.field!r})")


class ValidationError(GatewayError):
    """400: bad input; ``field`` names it."""


class AuthenticationError(GatewayError):
    """401: missing or invalid API key."""


class PermissionDeniedError(GatewayError):
    """403."""


class NotFoundError(GatewayError):
    """404: no such object in this account (another tenant's objects are 404 too)."""


class ConflictError(GatewayError):
    """409: a lifecycle transition the current status forbids, a full concurrency budget
    (code ``concurrency_budget_exceeded``), a duplicate phone number, an
    ``Idempotency-Key`` used before with another request (code
    ``idempotency_key_reused``)..."""


class PayloadTooLargeError(GatewayError):
    """413: the contacts file is over ``limits.max_csv_bytes``."""


class RateLimitError(GatewayError):
    """429."""


class ServerError(GatewayError):
    """5xx other than 503."""


class ServiceUnavailableError(ServerError):
    """503: the server's database is unreachable; retry after ``retry_after`` seconds."""


class APIConnectionError(GatewayError):
    """The request did not get a response: refused, reset, DNS failure, a stream cut."""

    def __init__(self, message: str, *, code: str = "connection_error") -> None:
        super().__init__(message, code=code)


class APITimeoutError(APIConnectionError):
    """No response (or no stream data) within the timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="timeout")


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: ValidationError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 409: ConflictError, 413: PayloadTooLargeError, 429: RateLimitError,
    503: ServiceUnavailableError,
}


def error_from_response(response: httpx.Response) -> GatewayError:
    """The typed exception for an error response (its body must have been read)."""
    status = response.status_code
    code, message, field = f"http_{status}", response.reason_phrase or "error", None
    try:
        detail = response.json()["error"]
        code = str(detail["code"])
        message = str(detail["message"])
        field = detail.get("field")
    except (ValueError, KeyError, TypeError):  # not our JSON: a proxy's page, say
        text = response.text.strip()
        if text:
            message = text[:200]
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else GatewayError)
    return kind(message, status_code=status, code=code, field=field, response=response,
                retry_after=_retry_after(response.headers.get("Retry-After")))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@contextlib.contextmanager
def map_transport_errors(base_url: str) -> Iterator[None]:
    """Translate httpx's transport failures at the SDK's edge."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"timed out talking to {base_url}: "
                              f"{exc or type(exc).__name__}") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"cannot reach {base_url}: "
                                 f"{exc or type(exc).__name__}") from exc
