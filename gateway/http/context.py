"""What handlers share: the services the app was built with, and the request's principal."""

from __future__ import annotations

import uuid
from typing import Protocol

import attrs
from pydantic import BaseModel
from quart import Response, current_app, g

from gateway.config import Settings
from gateway.db import Database
from gateway.engine.snapshots import Snapshots
from gateway.metrics import Metrics
from gateway.store.accounts import Principal
from gateway.store.pages import PAGE_SIZE, Page
from gateway.telephony.base import TelephonyAdapter


class Engine(Protocol):
    def notify(self, campaign_id: uuid.UUID) -> None: ...


@attrs.frozen
class Services:
    db: Database
    settings: Settings
    engine: Engine
    snapshots: Snapshots
    metrics: Metrics
    adapter: TelephonyAdapter  # /readyz asks whether it can place calls


def services() -> Services:
    return current_app.extensions["gateway"]


def principal() -> Principal:
    return g.principal


def respond(model: BaseModel, status: int = 200) -> Response:
    # pydantic's own JSON (ISO datetimes; Quart's encoder would write HTTP dates), written
    # in one pass by its Rust core: a page of 100 contacts costs a third less.
    return current_app.response_class(model.model_dump_json(), status=status,
                                      mimetype="application/json")


def no_content() -> Response:
    # The app's response class (quart-trio's), not quart.Response, whose empty body is
    # iterated through asyncio's executor and breaks the connection under trio.
    return current_app.response_class(b"", status=204)


def page_fields(page: Page) -> dict:
    return {"page": page.page, "page_size": PAGE_SIZE, "total": page.total,
            "has_more": page.has_more}
