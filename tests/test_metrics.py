"""GET /metrics: Prometheus' text format, read back with prometheus-client's own parser.

Real PostgreSQL, real servers on port 0, the sim carrier. The figures a scrape gives are
held against what the API says of the same calls (the calls pages), what the database
holds (the webhook outbox), and the bounds every figure has (pools, the loop's lag);
every sample's labels are checked to name no campaign, contact or number.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter

import pytest
import trio
from conftest import Gateway
from engine_helpers import engine_settings, rule, wait_status
from ports import free_tcp_port
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from test_engine_faults import create_campaign, serving, start

from gateway import __version__
from gateway.config import load_settings
from gateway.metrics import BACKLOG_TIMEOUT_SECONDS
from gateway.store import accounts
from gateway.vocabulary import Outcome

pytestmark = pytest.mark.timeout(60)

SLOW = "+1212555"  # numbers of calls that stay up a while
RULES = [rule(f"{SLOW}*", "answered", talk=1.5),
         rule("*1", "busy"), rule("*2", "no_answer"), rule("*3", "invalid_number"),
         rule("*4", "failed"), rule("*5", "answered", agent="agent_unavailable"),
         rule("*", "answered", talk=0.01)]
# Labels a gateway's own figures may carry (the process and GC collectors' too).
ALLOWED_LABELS = {"account_id", "outcome", "pool", "source", "version", "le",
                  "generation", "implementation", "major", "minor", "patchlevel"}


def overrides(**sections) -> dict:
    settings = engine_settings(RULES)
    # Deliveries stay undelivered while a test counts them: nobody looks for a minute.
    settings["webhooks"] = {"poll_seconds": 60}
    settings.update(sections)
    return settings


@pytest.fixture
def settings_overrides():
    return overrides()


class Scrape:
    """One scrape, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample of that name whose labels include ``labels`` (None: no such one)."""
        found = [s.value for s in self.samples if s.name == name
                 and all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) <= 1, (name, labels, found)
        return found[0] if found else None

    def by(self, name: str, label: str, **labels: str) -> dict[str, float]:
        return {s.labels[label]: s.value for s in self.samples if s.name == name
                and all(s.labels.get(k) == v for k, v in labels.items())}


async def scrape(client, url: str = "/metrics") -> Scrape:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


async def scrape_until(client, check, url: str = "/metrics") -> Scrape:
    """Scrape until ``check(scrape)`` holds (the test's time limit bounds it)."""
    while not check(found := await scrape(client, url)):
        await trio.sleep(0.02)
    return found


def idle(found: Scrape) -> bool:
    """No campaign actor left (an actor ends just after it wrote its campaign's end)."""
    return not any(found.by("gateway_running_campaigns", "account_id").values())


async def account_of(raw, campaign_id: str) -> str:
    return str(await raw.fetchval("SELECT account_id FROM campaigns WHERE id = $1",
                                  uuid.UUID(campaign_id)))


async def calls_of(api, campaign_id: str) -> list[dict]:
    calls, page = [], 0
    while True:
        body = (await api.get(f"/api/v1/campaigns/{campaign_id}/calls",
                              params={"page": page})).json()
        calls += body["data"]
        if not body["has_more"]:
            return calls
        page += 1


def csv_of(numbers: list[str]) -> bytes:
    return ("phone_number\n" + "".join(f"{n}\n" for n in numbers)).encode()


def numbers(count: int, first: int = 2_000_000) -> list[str]:
    """Valid US numbers (+1 213 2xx xxxx) ending in every digit, none matching SLOW."""
    return [f"+1213{first + i:07d}" for i in range(count)]


def check_labels(found: Scrape, forbidden: set[str]) -> None:
    """No sample names a campaign, a contact, a call or a number."""
    for sample in found.samples:
        assert set(sample.labels) <= ALLOWED_LABELS, sample
        assert not set(sample.labels.values()) & forbidden, sample


@contextlib.asynccontextmanager
async def second_account(db, gateway: Gateway, **caps):
    tenant = await accounts.create_account(db, name="B", concurrent_max=caps.get("concurrent", 7),
                                           calls_per_minute=caps.get("per_minute", 100_000))
    async with gateway.client(tenant.api_key) as client:
        yield str(tenant.account.id), client


# --- the scrape itself ---------------------------------------------------------------------


async def test_a_scrape_needs_no_key_and_every_figure_is_named_and_explained(gateway):
    async with gateway.client(api_key=None) as anonymous:
        # The loop's lag is measured every 0.25 s: wait for a few measures.
        found = await scrape_until(anonymous, lambda s: (
            s.value("gateway_event_loop_lag_seconds_count") or 0) >= 3)
    for family in found.families.values():
        assert family.name.startswith(("gateway_", "process_", "python_")), family.name
        assert family.documentation, family.name
        assert family.type in ("counter", "gauge", "histogram", "info"), family.name
    assert not [s for s in found.samples if s.name.endswith("_created")]  # no extra series
    assert found.value("gateway_build_info", version=__version__) == 1
    assert found.value("process_cpu_seconds_total") > 0
    assert found.value("process_resident_memory_bytes") > 0
    assert found.value("python_gc_objects_collected_total", generation="0") is not None
    # The loop's lag: measured, under a second (a test process, not a loaded gateway).
    count = found.value("gateway_event_loop_lag_seconds_count")
    assert 0 <= found.value("gateway_event_loop_lag_seconds_sum") / count < 1.0
    assert 0 <= found.value("gateway_event_loop_lag_latest_seconds") < 1.0
    buckets = found.by("gateway_event_loop_lag_seconds_bucket", "le")
    assert buckets["+Inf"] == count and list(buckets.values()) == sorted(buckets.values())
    # Both pools, within their bounds; the API's is make_settings' 4, the engine's 10.
    sizes = found.by("gateway_db_pool_connections", "pool")
    in_use = found.by("gateway_db_pool_connections_in_use", "pool")
    most = found.by("gateway_db_pool_connections_max", "pool")
    assert set(sizes) == set(in_use) == set(most) == {"api", "engine"}
    assert most == {"api": 4, "engine": 10}
    for pool in sizes:
        assert 0 <= in_use[pool] <= sizes[pool] <= most[pool], pool
    assert found.value("gateway_sse_subscribers") == 0
    assert found.value("gateway_scrape_errors_total", source="webhook_backlog") == 0
    # Nothing dialed yet: no account has a series of its own.
    assert not found.by("gateway_dials_total", "account_id")
    assert not found.by("gateway_webhook_backlog_deliveries", "account_id")


def test_the_metrics_section_is_read_from_the_environment():
    settings = load_settings(environ={"GATEWAY_METRICS_HOST": "0.0.0.0",
                                      "GATEWAY_METRICS_PORT": "9100"})
    assert (settings.metrics.host, settings.metrics.port) == ("0.0.0.0", 9100)
    assert load_settings(environ={}).metrics.host == ""  # default: the API's port


# --- dials and outcomes ----------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_dials_and_outcomes_per_account_are_the_calls_the_api_lists(gateway, api, db,
                                                                        raw):
    async with second_account(db, gateway) as (other_id, other):
        mine = await create_campaign(api, csv_of(numbers(120)), max_concurrent_calls=20,
                                     retries_per_contact=1)
        theirs = await create_campaign(other, csv_of(numbers(45, first=3_000_000)),
                                       max_concurrent_calls=5, retries_per_contact=2)
        await start(api, mine)
        await start(other, theirs)
        await wait_status(api, mine, "completed")
        await wait_status(other, theirs, "completed")
        my_id = await account_of(raw, mine)
        found = await scrape_until(api, idle)  # the actors end just after the status
        forbidden = {mine, theirs}
        for account_id, client, campaign_id in ((my_id, api, mine),
                                                (other_id, other, theirs)):
            calls = await calls_of(client, campaign_id)
            forbidden |= {c["id"] for c in calls} | {c["contact_id"] for c in calls}
            forbidden |= {c["phone_number"] for c in calls}
            listed = Counter(c["outcome"] for c in calls)
            assert found.value("gateway_dials_total", account_id=account_id) == len(calls)
            counted = found.by("gateway_call_outcomes_total", "outcome", account_id=account_id)
            # Every outcome has its series, from 0, so a rate over it is defined at once.
            assert set(counted) == set(Outcome)
            assert {o: n for o, n in counted.items() if n} == dict(listed)
            # Idle again: nothing live, no slot in use, nobody waiting; every dial of the
            # run is in the account's rate window (the run took well under a minute).
            assert found.value("gateway_live_calls", account_id=account_id) == 0
            assert found.value("gateway_running_campaigns", account_id=account_id) == 0
            assert found.value("gateway_account_concurrent_calls", account_id=account_id) == 0
            assert found.value("gateway_budget_waiting_campaigns", account_id=account_id) == 0
            assert found.value("gateway_account_calls_last_minute",
                               account_id=account_id) == len(calls)
        # 120 contacts ending in every digit: 12 of each; one retry for the retryable.
        assert sum(found.by("gateway_call_outcomes_total", "outcome",
                            account_id=my_id).values()) == 120 + 12 * 4
        # Each account's caps, as set: the engine settings' default, and B's own.
        assert found.by("gateway_account_concurrent_calls_max", "account_id") == {
            my_id: 50, other_id: 7}
        assert found.by("gateway_account_calls_per_minute_max", "account_id") == {
            my_id: 1_000_000, other_id: 100_000}
        assert found.value("gateway_account_dials_left_today", account_id=my_id) is None
        # Every claim and every result write timed; the writes hold every result counted.
        assert found.value("gateway_claim_duration_seconds_count") > 0
        assert found.value("gateway_record_duration_seconds_count") > 0
        assert found.value("gateway_record_batch_results_sum") == sum(
            sum(found.by("gateway_call_outcomes_total", "outcome", account_id=a).values())
            for a in (my_id, other_id))
        check_labels(found, forbidden)


async def test_live_calls_are_counted_while_they_are_up_and_back_to_0_after(gateway, api,
                                                                           raw):
    slow = [f"{SLOW}{1000 + i:04d}" for i in range(6)]
    campaign_id = await create_campaign(api, csv_of(slow), max_concurrent_calls=2)
    await start(api, campaign_id)
    account_id = await account_of(raw, campaign_id)
    # Two calls up (the campaign's cap), its actor waiting for a third slot.
    with trio.fail_after(10):
        up = await scrape_until(api, lambda s: (
            s.value("gateway_live_calls", account_id=account_id) == 2
            and s.value("gateway_budget_waiting_campaigns", account_id=account_id) == 1))
    assert up.value("gateway_account_concurrent_calls", account_id=account_id) == 2
    assert up.value("gateway_running_campaigns", account_id=account_id) == 1
    calls = await calls_of(api, campaign_id)
    assert sum(c["outcome"] is None for c in calls) == 2  # the API's live calls too
    await wait_status(api, campaign_id, "completed")
    done = await scrape_until(api, idle)
    assert done.value("gateway_live_calls", account_id=account_id) == 0
    assert done.value("gateway_running_campaigns", account_id=account_id) == 0
    assert done.value("gateway_account_concurrent_calls", account_id=account_id) == 0
    assert done.value("gateway_budget_waiting_campaigns", account_id=account_id) == 0
    assert done.value("gateway_call_outcomes_total", account_id=account_id,
                      outcome="answered") == 6


async def test_sse_subscribers_are_counted_while_their_streams_are_open(gateway, api):
    campaign_id = await create_campaign(api, csv_of(numbers(1)))
    async with api.stream("GET", f"/api/v1/campaigns/{campaign_id}/events") as events:
        assert events.status_code == 200
        with trio.fail_after(5):
            await scrape_until(api, lambda s: s.value("gateway_sse_subscribers") == 1)
    with trio.fail_after(5):
        await scrape_until(api, lambda s: s.value("gateway_sse_subscribers") == 0)


# --- the webhook backlog ----------------------------------------------------------------------


PENDING = """SELECT e.account_id, count(*) FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.status = 'pending' GROUP BY e.account_id"""


async def test_the_webhook_backlog_is_the_undelivered_deliveries(gateway, api, db, raw):
    # Nothing listens there, and the delivery actor looks only once a minute.
    hook = f"http://127.0.0.1:{free_tcp_port()}/hooks"
    assert (await api.post("/api/v1/webhooks", json={"url": hook})).status_code == 201
    async with second_account(db, gateway) as (other_id, other):
        assert (await other.post("/api/v1/webhooks", json={"url": hook})).status_code == 201
        campaign_id = await create_campaign(api, csv_of(numbers(30)))
        await start(api, campaign_id)
        await wait_status(api, campaign_id, "completed")
        account_id = await account_of(raw, campaign_id)
        pending = {str(a): n for a, n in await raw.fetch(PENDING)}
        assert pending[account_id] > 30  # call.ended and contact.finished per call, and more
        found = await scrape(api)
        assert found.by("gateway_webhook_backlog_deliveries", "account_id") == {
            account_id: pending[account_id], other_id: 0}
        # The first 5 of the campaign's queue delivered, as the delivery actor writes it
        # (the queue's cursor moves past them): the backlog is what is left.
        first = await raw.fetch("SELECT endpoint_id, id, now() AS at FROM webhook_deliveries "
                                "ORDER BY txid, id LIMIT 5")
        await db.execute("webhooks.delivered", [r["id"] for r in first],
                         [r["at"] for r in first], [200] * 5, None,
                         uuid.uuid4(), first[0]["at"], first[0]["endpoint_id"])
        assert await raw.fetchval("SELECT count(*) FROM webhook_queues") == 1
        after = await scrape(api)
        assert after.value("gateway_webhook_backlog_deliveries", account_id=account_id) == \
            pending[account_id] - 5 == {str(a): n for a, n in await raw.fetch(PENDING)}[
                account_id]


@pytest.mark.timeout(30)
async def test_a_backlog_query_that_does_not_answer_is_left_out_and_counted(gateway, api, raw):
    assert (await api.post("/api/v1/webhooks",
                           json={"url": "http://127.0.0.1:9/x"})).status_code == 201
    assert (await scrape(api)).by("gateway_webhook_backlog_deliveries", "account_id")
    # Another session holds the endpoints table locked: the backlog query waits on it.
    await raw.execute("BEGIN")
    try:
        await raw.execute("LOCK TABLE webhook_endpoints IN ACCESS EXCLUSIVE MODE")
        began = trio.current_time()
        found = await scrape(api)
        took = trio.current_time() - began
    finally:
        with trio.CancelScope(shield=True):
            await raw.execute("ROLLBACK")
    assert BACKLOG_TIMEOUT_SECONDS <= took < BACKLOG_TIMEOUT_SECONDS + 2
    assert "gateway_webhook_backlog_deliveries" not in found.families
    assert found.value("gateway_scrape_errors_total", source="webhook_backlog") == 1
    # The rest of the scrape is there.
    assert found.value("gateway_sse_subscribers") == 0
    assert found.value("gateway_db_pool_connections_max", pool="api") == 4
    # The lock gone, the figure is back; the query given up left no connection lent out.
    back = await scrape(api)
    assert back.by("gateway_webhook_backlog_deliveries", "account_id")
    assert back.value("gateway_scrape_errors_total", source="webhook_backlog") == 1
    assert back.value("gateway_db_pool_connections_in_use", pool="api") == 0


# --- a listener of its own ---------------------------------------------------------------------


async def test_metrics_on_their_own_listener_and_404_on_the_api_port(database_url,
                                                                      empty_database_url,
                                                                      tmp_path):
    port = free_tcp_port()
    listening = overrides(metrics={"host": "127.0.0.1", "port": port})
    async with serving(database_url, tmp_path / "a", listening) as apart, \
            serving(empty_database_url, tmp_path / "b", overrides()) as beside:
        async with apart.client() as api_a, beside.client() as api_b:
            assert (await api_a.get("/metrics")).status_code == 404
            assert (await api_a.get("/readyz")).status_code == 200
            spec = (await api_a.get("/openapi.json")).json()
            assert "/metrics" not in spec["paths"] and "/readyz" in spec["paths"]
            own = f"http://127.0.0.1:{port}"
            async with apart.client(api_key=None) as anonymous:
                first = await scrape(anonymous, f"{own}/metrics")
                assert (await anonymous.get(f"{own}/readyz")).status_code == 404
                # Two gateways in one process: a campaign dialed by one is not counted by
                # the other.
                campaign_id = await create_campaign(api_b, csv_of(numbers(10)))
                await start(api_b, campaign_id)
                await wait_status(api_b, campaign_id, "completed")
                assert sum((await scrape(api_b)).by("gateway_dials_total",
                                                    "account_id").values()) == 10
                again = await scrape(anonymous, f"{own}/metrics")
            assert not again.by("gateway_dials_total", "account_id")
            assert first.value("gateway_build_info", version=__version__) == 1
