"""``GET /api/v1/call-limits``: the account's caps."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import document_response

from gateway.http.context import principal, respond
from gateway.http.schemas import CallLimits

bp = Blueprint("limits", __name__)


@bp.get("/call-limits")
@document_response(CallLimits)
async def call_limits():
    account = principal().account
    return respond(CallLimits(concurrent_max=account.concurrent_max,
                              calls_per_minute=account.calls_per_minute,
                              daily_calls_max=account.daily_calls_max,
                              daily_minutes_max=account.daily_minutes_max))
