"""The Quart-Trio application: blueprints, validation, OpenAPI, error translation."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify
from quart_schema import QuartSchema, document_response, security_scheme
from quart_trio import QuartTrio

from gateway import __version__
from gateway.http import errors, idempotency
from gateway.http.context import Services, services
from gateway.http.openapi import GatewayOpenAPI
from gateway.http.openapi import errors as errors_documented
from gateway.http.routes import (
    agents,
    campaigns,
    dashboard,
    dnc,
    events,
    exports,
    lifecycle,
    limits,
    ops,
    phone_numbers,
    rerun,
    swagger,
    webhooks,
)
from gateway.http.routes.auth import KeyCache, authenticate
from gateway.http.schemas import HealthOut

_DESCRIPTION = """Outbound voice campaign gateway.

Every `/api/v1` call needs `Authorization: Bearer <api key>`. Errors are JSON:
`{"error": {"code": "...", "message": "...", "field": "..."}}` (each operation lists the
statuses it can answer); a 400's message starts with the field it names. Lists are
zero-based pages of 100 (`?page=0`) with `total` and `has_more`. Another account's objects
answer 404.
"""


def create_app(svc: Services) -> QuartTrio:
    app = QuartTrio("gateway")
    app.extensions["gateway"] = svc
    app.extensions["gateway_keys"] = KeyCache(svc.settings.http.auth_cache_seconds)
    # Uploads are streamed and counted by the campaign route itself; this only turns away a
    # declared Content-Length that could never fit.
    app.config["MAX_CONTENT_LENGTH"] = (svc.settings.limits.max_csv_bytes
                                        + campaigns.FORM_OVERHEAD_BYTES)
    app.config["JSON_SORT_KEYS"] = False
    QuartSchema(
        app,
        openapi_path="/openapi.json",
        openapi_provider_class=GatewayOpenAPI,
        swagger_ui_path=None,  # /docs is served offline by routes/swagger.py
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={"title": "Outbound campaign gateway", "version": __version__,
              "description": _DESCRIPTION},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        security=[{"bearer": []}],
    )
    api = Blueprint("api", __name__, url_prefix="/api/v1")
    api.before_request(authenticate)
    for module in (limits, agents, phone_numbers, campaigns, lifecycle, events, dnc, exports,
                   rerun, webhooks):
        api.register_blueprint(module.bp)
    app.register_blueprint(api)
    app.register_blueprint(swagger.bp)  # /docs and its files: public
    app.register_blueprint(dashboard.bp)  # / and /ui/...: the web dashboard, public
    app.register_blueprint(ops.bp)  # /readyz: public
    if not svc.settings.metrics.host:  # else on its own listener (gateway/serve.py)
        app.register_blueprint(ops.metrics_bp)  # /metrics: public
    idempotency.install(app)  # every POST of the API: after authenticate, before the view
    errors.register(app)

    @app.get("/healthz")
    @security_scheme([])  # public: no API key
    @document_response(HealthOut)
    @errors_documented(503)
    async def healthz() -> Response:
        """Liveness and database reachability (503 while PostgreSQL is unreachable)."""
        await services().db.fetchval("health.ping")
        return jsonify({"status": "ok"})

    return app
