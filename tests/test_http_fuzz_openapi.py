"""Schemathesis against the gateway's own ``/openapi.json``: a real server on port 0, a valid
API key, real PostgreSQL. Every operation, valid and invalid inputs (schemathesis' positive
and negative modes), and again with the ids of real objects in the path; every answer must
not be a 5xx, must have a documented status and media type, and must match the documented
schema (errors included: ``ErrorOut``).

Deterministic (hypothesis ``derandomize``, no example database) and bounded (examples per
operation and mode); ``-m slow`` runs many more examples. Schemathesis calls are blocking:
they run in a worker thread while the server serves from the test's trio loop, so the
conftest's time bound holds for the whole run.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
import trio
from conftest import API_KEY, contacts_csv
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = 8
SLOW_EXAMPLES = 150
CALL_TIMEOUT_SECONDS = 10
CHECKS = [schemathesis.checks.not_a_server_error,
          schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance,
          schemathesis.checks.response_schema_conformance]


def _fuzz(spec: dict, base_url: str, real_ids: dict[str, str], examples: int):
    """Run every operation; return (operations run, statuses seen, failures as lines)."""
    schema = schemathesis.openapi.from_dict(spec)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    ran, statuses, failures = set(), Counter(), []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        runs = [(mode, None) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        # The same operation on real objects, so the handlers past the 404 are reached too
        # (not the event stream: on a live campaign it runs until the campaign ends).
        if names and names <= set(real_ids) and not operation.path.endswith("/events"):
            runs.append((GenerationMode.POSITIVE, {n: real_ids[n] for n in names}))
        for mode, path_parameters in runs:
            strategy = operation.as_strategy(generation_mode=mode, headers=headers,
                                             path_parameters=path_parameters)

            @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck), print_blob=False)
            @given(case=strategy)
            def check(case):
                response = case.call(base_url=base_url, timeout=CALL_TIMEOUT_SECONDS)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                if mode is not GenerationMode.NEGATIVE:
                    raise
                # Nothing to make invalid: the operation has no parameters and no body.
            except Exception as exc:  # each failure names its operation; all are reported
                failures.append(f"{operation.label} [{mode.value}"
                                f"{', real ids' if path_parameters else ''}]: "
                                f"{str(exc)[:2000]}")
            ran.add(operation.label)
    return ran, statuses, failures


async def _run(gateway, api, agent_id, number_id, examples: int) -> None:
    spec = (await api.get("/openapi.json")).json()
    operations = {f"{method.upper()} {path}" for path, methods in spec["paths"].items()
                  for method in methods}
    assert len(operations) >= 20, sorted(operations)
    created = await api.post("/api/v1/campaigns", files={"contacts": contacts_csv(3)},
                             data={"name": "fuzz", "agent_id": agent_id,
                                   "phone_number_id": number_id})
    assert created.status_code == 201, created.text
    real_ids = {"agent_id": agent_id, "number_id": number_id,
                "campaign_id": created.json()["id"]}
    ran, statuses, failures = await trio.to_thread.run_sync(
        _fuzz, spec, gateway.base_url, real_ids, examples, abandon_on_cancel=True)
    assert ran == operations  # every operation of the document was exercised
    assert not failures, "\n\n".join(failures)
    # Both sides were reached: successes and the documented errors.
    assert {200, 201, 204, 400, 404} <= set(statuses), statuses
    print("statuses:", dict(sorted(statuses.items())), "requests:", statuses.total())


@pytest.mark.timeout(90)
async def test_openapi_operations_conform(gateway, api, agent_id, number_id):
    await _run(gateway, api, agent_id, number_id, EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_openapi_operations_conform_long(gateway, api, agent_id, number_id):
    await _run(gateway, api, agent_id, number_id, SLOW_EXAMPLES)
