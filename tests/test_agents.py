"""``/api/v1/agents``: create, get, list, update, delete, validation.

Each test costs a fresh database and a server start, so tables of bad inputs run in one test
each and report every row that misbehaves at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

AGENTS = "/api/v1/agents"


async def create(api, **fields) -> dict:
    response = await api.post(AGENTS, json=fields)
    assert response.status_code == 201, response.text
    return response.json()


def validation_problem(response, field: str) -> str | None:
    """None if ``response`` is a 400 naming ``field`` in the body and message; else why not."""
    if response.status_code != 400 or not response.headers["content-type"].startswith(
            "application/json"):
        return f"{response.status_code} {response.text}"
    error = response.json().get("error", {})
    if error.get("field") != field or field not in error.get("message", ""):
        return f"expected field {field!r}: {response.text}"
    return None


async def test_create_and_get(api):
    agent = await create(api, name="  Support bot  ")
    assert uuid.UUID(agent["id"])
    assert agent["name"] == "Support bot"  # surrounding whitespace is trimmed
    assert agent["status"] == "active"
    assert agent["greeting"] == "" and agent["variables"] == []
    assert agent["sip_uri"] is None and agent["max_concurrent_calls"] is None
    assert "media_address" not in agent
    assert agent["created_at"] == agent["updated_at"]
    response = await api.get(f"{AGENTS}/{agent['id']}")
    assert response.status_code == 200 and response.json() == agent

    fields = {"name": "N" * 200, "status": "inactive", "sip_uri": "sips:ava@10.0.0.5:5061",
              "greeting": "Hi {{first_name}}, this is {{ company }}. {{first_name}}?"}
    full = await create(api, **fields)
    assert {k: full[k] for k in fields} == fields
    assert full["variables"] == ["first_name", "company"]  # first use order, no repeats
    assert (await api.get(f"{AGENTS}/{full['id']}")).json() == full


# (body, the field the 400 must name)
BAD_CREATES = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": None}, "name"),
    ({"name": 5}, "name"),
    ({"name": "a", "status": "paused"}, "status"),
    ({"name": "a", "status": None}, "status"),
    ({"name": "a", "greeting": "Hi {{first_name"}, "greeting"),
    ({"name": "a", "greeting": "Hi {{}}"}, "greeting"),
    ({"name": "a", "greeting": "Hi first_name}}"}, "greeting"),
    ({"name": "a", "greeting": 5}, "greeting"),
    ({"name": "a", "sip_uri": "http://x"}, "sip_uri"),
    ({"name": "a", "sip_uri": "sip:"}, "sip_uri"),
    ({"name": "a", "sip_uri": "sip:a b@host"}, "sip_uri"),
    ({"name": "a", "extra": 1}, "extra"),
    # Gone: the agent leg carries the trunk's SDP untouched. Unknown like any other field.
    ({"name": "a", "media_address": "10.0.0.9"}, "media_address"),
    ({"name": "a", "media_address": None}, "media_address"),
    ({"name": "a", "max_concurrent_calls": 0}, "max_concurrent_calls"),
    ({"name": "a", "max_concurrent_calls": -1}, "max_concurrent_calls"),
    ({"name": "a", "max_concurrent_calls": 10_001}, "max_concurrent_calls"),
    ({"name": "a", "max_concurrent_calls": 2**31}, "max_concurrent_calls"),
    ({"name": "a", "max_concurrent_calls": 1.5}, "max_concurrent_calls"),
    ({"name": "a", "max_concurrent_calls": "many"}, "max_concurrent_calls"),
    ({"name": "a", "max_concurrent_calls": [3]}, "max_concurrent_calls"),
    ({"name": "a", "variables": ["x"]}, "variables"),  # output-only
    ({"name": "a", "id": str(uuid.uuid4())}, "id"),  # output-only
]
# (raw body, Content-Type): not a JSON object; the 400 names the field "body".
NOT_OBJECTS = [
    (b'["name"]', "application/json"),
    (b'"name"', "application/json"),
    (b"null", "application/json"),
    (b"42", "application/json"),
    (b"name=a", "application/x-www-form-urlencoded"),
    (b'{"name": "a"}', "text/plain"),
    (b"", None),
]


async def test_create_rejects_bad_bodies(api):
    problems = []
    for body, field in BAD_CREATES:
        problem = validation_problem(await api.post(AGENTS, json=body), field)
        problems += [f"{body!r}: {problem}"] if problem else []
    for content, content_type in NOT_OBJECTS:
        headers = {"Content-Type": content_type} if content_type else {}
        problem = validation_problem(await api.post(AGENTS, content=content, headers=headers),
                                     "body")
        problems += [f"{content!r} as {content_type}: {problem}"] if problem else []
    assert not problems, "\n".join(problems)
    assert (await api.get(AGENTS)).json()["total"] == 0


async def test_malformed_json_names_the_body(api):
    response = await api.post(AGENTS, content=b'{"name": "a"',
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert validation_problem(response, "body") is None, response.text


async def test_blank_placeholder_is_rejected(api):
    response = await api.post(AGENTS, json={"name": "a", "greeting": "Hi {{ }}"})
    assert validation_problem(response, "greeting") is None, response.text


async def test_list_pages(api):
    empty = (await api.get(AGENTS)).json()
    assert empty == {"data": [], "page": 0, "page_size": 100, "total": 0, "has_more": False}
    names = [f"agent {i:03d}" for i in range(101)]
    for name in names:
        await create(api, name=name)
    first = (await api.get(AGENTS)).json()
    assert {k: first[k] for k in ("page", "page_size", "total", "has_more")} == {
        "page": 0, "page_size": 100, "total": 101, "has_more": True}
    second = (await api.get(AGENTS, params={"page": 1})).json()
    assert (second["page"], second["total"], second["has_more"]) == (1, 101, False)
    assert [a["name"] for a in first["data"] + second["data"]] == names  # creation order
    beyond = (await api.get(AGENTS, params={"page": 7})).json()
    assert (beyond["data"], beyond["total"], beyond["has_more"]) == ([], 101, False)

    problems = []
    for page in ("-1", "abc", "1.5", "", "1000001"):
        problem = validation_problem(await api.get(AGENTS, params={"page": page}), "page")
        problems += [f"page={page!r}: {problem}"] if problem else []
    assert not problems, "\n".join(problems)


BAD_PATCHES = [
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"status": None}, "status"),
    ({"status": "deleted"}, "status"),
    ({"greeting": None}, "greeting"),
    ({"greeting": "{{oops"}, "greeting"),
    ({"sip_uri": "http://x"}, "sip_uri"),
    ({"colour": "blue"}, "colour"),
    ({"media_address": "10.0.0.9"}, "media_address"),
    ({"media_address": None}, "media_address"),
    ({"max_concurrent_calls": 0}, "max_concurrent_calls"),
    ({"max_concurrent_calls": 10_001}, "max_concurrent_calls"),
    ({"max_concurrent_calls": "x"}, "max_concurrent_calls"),
    ({"name": "ok", "id": str(uuid.uuid4())}, "id"),
    ([], "body"),
]


async def test_patch_changes_only_the_given_fields(api):
    agent = await create(api, name="Ava", greeting="Hi {{first_name}}", sip_uri="sip:ava@h")
    url = f"{AGENTS}/{agent['id']}"

    problems = []
    for body, field in BAD_PATCHES:
        problem = validation_problem(await api.patch(url, json=body), field)
        problems += [f"{body!r}: {problem}"] if problem else []
    assert not problems, "\n".join(problems)
    assert (await api.get(url)).json() == agent  # no rejected patch applied anything

    response = await api.patch(url, json={"status": "inactive"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["status"] == "inactive"
    assert (datetime.fromisoformat(updated["updated_at"])
            > datetime.fromisoformat(agent["updated_at"]))
    unchanged = ("id", "name", "greeting", "variables", "sip_uri", "max_concurrent_calls",
                 "created_at")
    assert {k: updated[k] for k in unchanged} == {k: agent[k] for k in unchanged}

    updated = (await api.patch(url, json={"greeting": "Bye {{last_name}}", "name": " Bo "})).json()
    assert (updated["name"], updated["greeting"], updated["variables"]) == (
        "Bo", "Bye {{last_name}}", ["last_name"])
    assert (updated["status"], updated["sip_uri"]) == ("inactive", "sip:ava@h")

    updated = (await api.patch(url, json={"sip_uri": None})).json()
    assert updated["sip_uri"] is None and updated["name"] == "Bo"
    same = (await api.patch(url, json={})).json()  # an empty patch changes nothing
    assert (same["name"], same["status"], same["sip_uri"]) == ("Bo", "inactive", None)
    assert (await api.get(url)).json() == same


async def test_max_concurrent_calls_is_set_changed_cleared_and_read(api):
    """An agent's cap: null (no cap) unless given, 1..10,000; a PATCH sets or clears it
    and leaves it alone when absent; every read (get, list) shows it."""
    capped = await create(api, name="IVR", max_concurrent_calls=3)
    assert capped["max_concurrent_calls"] == 3
    edges = [await create(api, name=f"edge {n}", max_concurrent_calls=n) for n in (1, 10_000)]
    assert [a["max_concurrent_calls"] for a in edges] == [1, 10_000]
    explicit_null = await create(api, name="open", max_concurrent_calls=None)
    assert explicit_null["max_concurrent_calls"] is None
    url = f"{AGENTS}/{capped['id']}"

    async def patch(body: dict) -> dict:
        response = await api.patch(url, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    assert (await patch({"max_concurrent_calls": 40}))["max_concurrent_calls"] == 40
    renamed = await patch({"name": "IVR 2"})  # absent: unchanged
    assert (renamed["name"], renamed["max_concurrent_calls"]) == ("IVR 2", 40)
    assert (await api.get(url)).json()["max_concurrent_calls"] == 40
    listed = {a["id"]: a["max_concurrent_calls"] for a in (await api.get(AGENTS)).json()["data"]}
    assert listed == {capped["id"]: 40, edges[0]["id"]: 1, edges[1]["id"]: 10_000,
                      explicit_null["id"]: None}
    cleared = await patch({"max_concurrent_calls": None})
    assert (cleared["max_concurrent_calls"], cleared["name"]) == (None, "IVR 2")
    assert (await api.get(url)).json() == cleared
    # Out of bounds on PATCH: a 400 naming the field, and nothing changed.
    problem = validation_problem(await api.patch(url, json={"max_concurrent_calls": 0,
                                                            "name": "x"}),
                                 "max_concurrent_calls")
    assert problem is None, problem
    assert (await api.get(url)).json() == cleared


async def test_openapi_shows_the_agent_fields_and_bounds(api):
    spec = (await api.get("/openapi.json")).json()
    item = spec["paths"][AGENTS + "/{agent_id}"]
    bodies = {"AgentCreate": spec["paths"][AGENTS]["post"]["requestBody"],
              "AgentUpdate": item["patch"]["requestBody"],
              "AgentOut": item["get"]["responses"]["200"]}
    for name, body in bodies.items():
        schema = body["content"]["application/json"]["schema"]
        assert schema["title"] == name
        properties = schema["properties"]
        assert "media_address" not in properties, name
        field = properties["max_concurrent_calls"]
        [number] = [arm for arm in field["anyOf"] if arm["type"] == "integer"]
        assert {"type": "null"} in field["anyOf"], name
        if name != "AgentOut":
            assert (number["minimum"], number["maximum"]) == (1, 10_000), name
        assert "at once" in field["description"], name


async def test_delete_then_gone(api):
    keep = await create(api, name="keep")
    agent = await create(api, name="drop")
    url = f"{AGENTS}/{agent['id']}"
    response = await api.delete(url)
    assert response.status_code == 204 and response.content == b""
    listing = (await api.get(AGENTS)).json()
    assert [a["id"] for a in listing["data"]] == [keep["id"]] and listing["total"] == 1
    # The deleted id, unknown ids and ids that are not UUIDs all answer 404.
    for agent_id in (agent["id"], uuid.uuid4(), "not-a-uuid", "123", uuid.uuid4().hex + "0"):
        for method, body in (("GET", None), ("PATCH", {"name": "back"}), ("DELETE", None)):
            response = await api.request(method, f"{AGENTS}/{agent_id}", json=body)
            assert response.status_code == 404, (method, agent_id, response.text)
            assert response.json()["error"]["code"] == "not_found"
    assert (await api.get(AGENTS)).json()["total"] == 1
