"""``GET /api/v1/call-limits``: the account's caps."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import document_response

from gateway.http.context import principal, respond, services
from gateway.http.errors import ApiError
from gateway.http.openapi import API, errors
from gateway.http.schemas import CallLimits
from gateway.store import accounts

bp = Blueprint("limits", __name__)


@bp.get("/call-limits")
@document_response(CallLimits)
@errors(*API)
async def call_limits() -> Response:
    # Read fresh: the principal may come from the key cache, and an operator may just
    # have changed the caps.
    account = await accounts.get(services().db, principal().account.id)
    if account is None:  # deleted while its key was cached
        raise ApiError(401, "unauthorized", "invalid API key")
    return respond(CallLimits(concurrent_max=account.concurrent_max,
                              calls_per_minute=account.calls_per_minute,
                              daily_calls_max=account.daily_calls_max,
                              daily_minutes_max=account.daily_minutes_max))
