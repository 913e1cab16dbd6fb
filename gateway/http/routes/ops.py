"""What operators and their tools ask, outside ``/api/v1`` and without an API key.

``GET /readyz``: can this process take traffic (the database answers, its schema is the
one this version ships, the telephony adapter can place calls); ``/healthz`` (the app's)
only says it is alive. ``GET /metrics``: the figures of :mod:`gateway.metrics` in
Prometheus' text format, on the API's port (``bp`` and ``metrics_bp`` registered by
:func:`gateway.http.app.create_app`) or, with ``[metrics] host`` set, on a listener of its
own (:func:`metrics_app`, served by :mod:`gateway.serve`).
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, Field
from quart import Blueprint, Response, current_app
from quart_schema import document_response, security_scheme
from quart_trio import QuartTrio

from gateway import migrations
from gateway.db import DatabaseUnavailable
from gateway.http.context import Services, respond, services
from gateway.http.errors import RETRY_AFTER_SECONDS
from gateway.http.openapi import raw_response
from gateway.metrics import CONTENT_TYPE

bp = Blueprint("ops", __name__)
metrics_bp = Blueprint("metrics", __name__)
READY_TIMEOUT_SECONDS = 2.0
OK = "ok"
Check = Literal["database", "migrations", "telephony"]


class ReadyChecks(BaseModel):
    database: str = Field(description='"ok", or why PostgreSQL did not answer.')
    migrations: str = Field(description='"ok": the latest migration applied is the latest '
                            "this gateway ships; else both versions.")
    telephony: str = Field(description='"ok": the adapter can place calls (SIP: its socket '
                           "is bound and read).")


class ReadyOut(BaseModel):
    """Ready: every check passed."""

    status: Literal["ready"]
    checks: ReadyChecks


class NotReadyOut(BaseModel):
    """Not ready: `failing` names the checks that failed and `checks` says why; ask again
    after `Retry-After` seconds."""

    status: Literal["not_ready"]
    failing: list[Check]
    checks: ReadyChecks


@functools.cache
def shipped_migration() -> int:
    """The latest migration this gateway ships (read once)."""
    return migrations.available()[-1].version


@bp.get("/readyz")
@security_scheme([])  # public: no API key
@document_response(ReadyOut)
@document_response(NotReadyOut, 503)
async def readyz() -> Response:
    """Readiness: can this process take traffic.

    The database answers within 2 s, the latest migration applied is the latest this
    gateway ships, and the telephony adapter can place calls. A load balancer sends
    requests only to processes that answer 200; `/healthz` says a process is alive."""
    svc = services()
    checks = ReadyChecks(database=OK, migrations=OK, telephony=OK)
    applied: int | None = None
    try:
        applied = await svc.metrics.reads.read(
            "readiness", READY_TIMEOUT_SECONDS,
            lambda: svc.db.fetchval("ops.migration_applied"))
    except TimeoutError:
        checks.database = f"no answer within {READY_TIMEOUT_SECONDS:g} s"
    except DatabaseUnavailable as exc:
        checks.database = f"unreachable ({exc})"
    except Exception as exc:  # reachable, but the migrations table cannot be read
        checks.migrations = f"cannot be read ({type(exc).__name__})"
    shipped = shipped_migration()
    if checks.database != OK:
        checks.migrations = "unknown (the database did not answer)"
    elif checks.migrations == OK and applied != shipped:
        why = "not applied yet" if (applied or 0) < shipped else "a newer gateway migrated it"
        checks.migrations = f"applied {applied or 0}, this gateway ships {shipped} ({why})"
    if not svc.adapter.ready:
        checks.telephony = f"the {svc.settings.telephony.adapter} adapter is not running"
    failing: list[Check] = [name for name in ("database", "migrations", "telephony")
                            if getattr(checks, name) != OK]
    if not failing:
        return respond(ReadyOut(status="ready", checks=checks))
    response = respond(NotReadyOut(status="not_ready", failing=failing, checks=checks), 503)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@metrics_bp.get("/metrics")
@security_scheme([])  # public: no API key (serve it on its own listener to keep it inside)
@raw_response(200, "Prometheus' text exposition format (version 0.0.4).", "text/plain")
async def metrics() -> Response:
    """Figures for Prometheus.

    Calls, dials and outcomes by account, the budget's caps and use, claim and result
    latencies, pools, the event loop's lag, SSE subscribers, the webhook backlog, and the
    process. Labels name accounts by id, never campaigns or contacts."""
    svc = services()
    body = await svc.metrics.scrape(svc.db)
    return current_app.response_class(body, status=200, content_type=CONTENT_TYPE)


def metrics_app(svc: Services) -> QuartTrio:
    """The app of the metrics listener (``[metrics] host`` set): ``/metrics`` only."""
    app = QuartTrio("gateway-metrics")
    app.extensions["gateway"] = svc
    app.register_blueprint(metrics_bp)
    return app
