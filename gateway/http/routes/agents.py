"""``/api/v1/agents``: create, list, get, update, delete voice agents."""

from __future__ import annotations

import uuid

import attrs
from quart import Blueprint, Response
from quart_schema import document_response, validate_querystring, validate_request

from gateway.http.context import no_content, page_fields, principal, respond, services
from gateway.http.errors import not_found
from gateway.http.openapi import API, errors, raw_response
from gateway.http.schemas import (
    AgentCreate,
    AgentOut,
    AgentPage,
    AgentUpdate,
    PageQuery,
    greeting_variables,
)
from gateway.store import agents
from gateway.store.agents import Agent

bp = Blueprint("agents", __name__)


def _out(agent: Agent) -> AgentOut:
    return AgentOut(**attrs.asdict(agent), variables=greeting_variables(agent.greeting))


@bp.post("/agents")
@validate_request(AgentCreate)
@document_response(AgentOut, 201)
@errors(400, 413, *API)
async def create_agent(data: AgentCreate) -> Response:
    agent = await agents.create(services().db, principal().account.id, **data.model_dump())
    return respond(_out(agent), 201)


@bp.get("/agents")
@validate_querystring(PageQuery)
@document_response(AgentPage)
@errors(400, *API)
async def list_agents(query_args: PageQuery) -> Response:
    page = await agents.page(services().db, principal().account.id, query_args.page)
    return respond(AgentPage(data=[_out(a) for a in page.items], **page_fields(page)))


@bp.get("/agents/<uuid:agent_id>")
@document_response(AgentOut)
@errors(404, *API)
async def get_agent(agent_id: uuid.UUID) -> Response:
    agent = await agents.get(services().db, principal().account.id, agent_id)
    if agent is None:
        raise not_found("agent")
    return respond(_out(agent))


@bp.patch("/agents/<uuid:agent_id>")
@validate_request(AgentUpdate)
@document_response(AgentOut)
@errors(400, 404, 413, *API)
async def update_agent(agent_id: uuid.UUID, data: AgentUpdate) -> Response:
    changes = data.model_dump(include=data.model_fields_set)
    agent = await agents.update(services().db, principal().account.id, agent_id, changes)
    if agent is None:
        raise not_found("agent")
    return respond(_out(agent))


@bp.delete("/agents/<uuid:agent_id>")
@raw_response(204, "Deleted (soft: campaigns keep their history).")
@errors(404, *API)
async def delete_agent(agent_id: uuid.UUID) -> Response:
    if not await agents.delete(services().db, principal().account.id, agent_id):
        raise not_found("agent")
    return no_content()
