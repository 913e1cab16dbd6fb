"""9. Exports: a 100k-contact campaign's ``contacts.csv`` and ``contacts.jsonl`` over HTTP
(the whole body read, in the client's chunks, thrown away), against ``psql \\copy (SELECT
...) TO STDOUT`` of the same rows and columns from the same database (to /dev/null): for
CSV the export's columns (the id computed from the campaign's prefix, a column per custom
field, ``WITH CSV HEADER``), for JSON lines one ``row_to_json`` object per row with the
same fields (the custom fields as one object); each SELECT written the fastest way found
(see `floor_sql`). An informational row compares the CSV export with psql's CSV of the
rows as stored (the custom fields left as their one JSON column).

The same for ``calls.csv`` and ``calls.jsonl``: a second campaign of 100k contacts is dialed
to its end on the simulated adapter (every call answered), and its 100k attempts exported
against ``psql \\copy`` of the same SELECT (the export's columns, times as the API writes
them, in the pages' order).

The campaign is the ingest benchmark's file: 100k rows, three ~29-character custom columns,
imported once. Rounds alternate floor and export (CSV floor, CSV export, JSON floor, JSONL
export, ...), ``ROUNDS`` of each, and the medians are compared: the target is ≤ 3x. Peak
server memory: the gateway's VmHWM is reset before each export; the figure is the largest
rise over the RSS before it.

Where an export's time goes (same process as the benchmark, same code and rows): a chunk
of the export (``store.chunk_rows`` rows) read with the export's query over asyncpg (the
rows decoded), then encoded by the route's own encoder; both run on the gateway's event
loop for each chunk, so the encoding's figure is also how long one chunk keeps the loop
from everything else (target < 20 ms).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import asyncpg
import trio

from gateway.http.routes.exports import encoder
from gateway.sql import query
from gateway.store import exports as store
from gateway.store.exports import CONTACT_FIELDS, Chunk
from tests.bench.harness import (
    Api,
    Pg,
    Row,
    aio,
    campaign_status,
    contacts_csv,
    fresh_database,
    gateway_process,
    maybe_profile,
    median,
)

NAME = "export"
ROUNDS = 5
ENCODE_REPEATS = 20


def floor_sql(campaign_id: str, names: list[str], media: str) -> str:
    """The floor's SELECT: the export's rows and columns, in its order, written the fastest
    way found by hand (each row's array of custom values cast to jsonb once, then indexed:
    ``->>`` on the json column parses it again for each field, 0.28 s against 0.25 s;
    ``contact_fields()`` inside ``row_to_json`` 0.63 s against 0.44 s). ``media`` "raw":
    CSV with the custom fields left as the one JSON column they are stored as (not the
    export's columns: how fast the rows come out of the table at all)."""
    fields = ["coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)) AS id",
              "c.row_number", "c.phone_number"]
    rest = ["c.status", "c.attempts", "c.last_outcome", "c.last_attempt_at",
            "c.next_attempt_at", "c.disposition"]
    source = (f"FROM contacts c JOIN campaigns cp ON cp.id = c.campaign_id, "
              f"LATERAL (SELECT c.custom_fields::jsonb AS j OFFSET 0) AS x "
              f"WHERE c.campaign_id = '{campaign_id}' ORDER BY c.seq")
    if media == "raw":
        return f"SELECT {', '.join([*fields, 'c.custom_fields', *rest])} {source}"
    if media == "csv":
        custom = [f"j ->> {i} AS \"custom_fields.{name}\"" for i, name in enumerate(names)]
        return f"SELECT {', '.join([*fields, *custom, *rest])} {source}"
    pairs = ", ".join(f"'{name}', j ->> {i}" for i, name in enumerate(names))
    json_fields = [*fields, f"json_build_object({pairs}) AS custom_fields", *rest]
    return f"SELECT row_to_json(r) FROM (SELECT {', '.join(json_fields)} {source}) AS r"


# The calls export's columns as the export's query writes them (exports.calls).
CALL_COLUMNS = ("a.id, a.contact_id, a.phone_number, a.attempt, a.outcome, "
                "api_time(a.dialed_at) AS dialed_at, api_time(a.answered_at) AS answered_at, "
                "api_time(a.connected_at) AS connected_at, api_time(a.ended_at) AS ended_at, "
                "a.duration_seconds, a.hangup_by, a.sip_call_id, a.sip_status, "
                "a.agent_sip_status, a.agent_sip_call_id, a.disposition, "
                "api_time(a.callback_at) AS callback_at, a.disposition_notes")


def calls_floor_sql(campaign_id: str, media: str) -> str:
    """The calls floor: the export's rows and columns in its order (dialed_at, id)."""
    select = (f"SELECT {CALL_COLUMNS} FROM attempts a WHERE a.campaign_id = '{campaign_id}' "
              "ORDER BY a.dialed_at, a.id")
    return select if media == "csv" else f"SELECT row_to_json(r) FROM ({select}) AS r"


async def psql_copy(url: str, select: str, options: str) -> float:
    """Seconds for ``psql \\copy (select) TO STDOUT`` into /dev/null."""
    command = ["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c",
               f"\\copy ({select}) TO STDOUT {options}"]
    started = time.perf_counter()
    await trio.run_process(command, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


async def http_export(client, path: str) -> tuple[float, int]:
    """Seconds and bytes for the whole body of ``GET path``."""
    size = 0
    started = time.perf_counter()
    async with client.stream("GET", path) as response:
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code}")
        async for chunk in response.aiter_raw():
            size += len(chunk)
    return time.perf_counter() - started, size


async def chunk_costs(url: str, campaign_id: str, names: tuple[str, ...],
                      count: int) -> dict:
    """A chunk from the middle of the campaign, read and encoded here as the gateway does:
    milliseconds (best of ENCODE_REPEATS) to read it, to encode it as CSV and as JSON
    lines; and its row count."""
    rows_per_chunk = store.chunk_rows(len(CONTACT_FIELDS) - 1 + len(names))
    conn = await aio(asyncpg.connect)(url, timeout=10)
    try:
        for type_name in ("json", "jsonb"):
            await aio(conn.set_type_codec)(type_name, encoder=json.dumps, decoder=json.loads,
                                           schema="pg_catalog")
        sql, start = query("exports.contacts"), count // 2
        reads, rows = [], []
        for _ in range(5):
            began = time.perf_counter()
            rows = await aio(conn.fetch)(sql, uuid.UUID(campaign_id), start,
                                         start + rows_per_chunk)
            reads.append(time.perf_counter() - began)
    finally:
        await aio(conn.close)()
    chunk = store.contacts_chunk(rows)
    costs = {"rows": len(rows), "read_ms": min(reads) * 1000}
    for media in ("csv", "jsonl"):
        encode = encoder("contacts", media, names)[1]
        times = []
        for _ in range(ENCODE_REPEATS):
            began = time.perf_counter()
            encode(Chunk(chunk.rows, chunk.custom_values))
            times.append(time.perf_counter() - began)
        costs[f"{media}_ms"] = min(times) * 1000
        costs[f"{media}_median_ms"] = median(times) * 1000
    return costs


async def _alternate(ctx, url: str, gateway, client, path: str, floors: dict[str, str],
                     rounds: int, tag: str) -> tuple[dict, dict[str, int]]:
    """``rounds`` rounds of (floor, export) for CSV then JSON lines of ``path`` (``.{media}``
    appended): the times, the peak RSS rises and the body sizes."""
    options = {"csv": "WITH CSV HEADER", "jsonl": ""}
    timings: dict[str, dict[str, list[float]]] = {
        media: {"floor": [], "export": [], "rise": []} for media in ("csv", "jsonl")}
    sizes: dict[str, int] = {}
    for repetition in range(rounds):
        for media in ("csv", "jsonl"):
            timings[media]["floor"].append(await psql_copy(url, floors[media],
                                                           options[media]))
            await trio.sleep(0.3)
            before = gateway.rss()
            gateway.reset_peak()
            async with maybe_profile(gateway, f"{NAME}-{tag}-{media}-{repetition}",
                                     ctx.profile_dir, rate=1000):
                seconds, sizes[media] = await http_export(client, f"{path}.{media}")
            timings[media]["export"].append(seconds)
            timings[media]["rise"].append(gateway.peak_rss() - before)
            ctx.log(f"export {tag} {media} {repetition + 1}/{rounds}: psql "
                    f"{timings[media]['floor'][-1]:.3f} s, HTTP {seconds:.3f} s "
                    f"({sizes[media] / 1e6:.1f} MB), peak "
                    f"+{timings[media]['rise'][-1] / 1e6:.1f} MB")
    return timings, sizes


def _rows(ctx, resource: str, what: str, count: int, rounds: int, timings: dict,
          sizes: dict[str, int]) -> list[Row]:
    """The table's rows for ``resource`` (contacts, calls): CSV, then JSON lines."""
    labels = {"csv": "psql \\copy same rows and columns, CSV HEADER",
              "jsonl": "psql \\copy same rows, row_to_json"}
    rows: list[Row] = []
    for media, floor_label in labels.items():
        path = f"{resource}.{media}"
        export, floor = median(timings[media]["export"]), median(timings[media]["floor"])
        detail = (f"{count} {what}, {sizes[media] / 1e6:.1f} MB body, median of {rounds}; "
                  f"exports {', '.join(f'{t:.3f}' for t in timings[media]['export'])} s; "
                  f"floors {', '.join(f'{t:.3f}' for t in timings[media]['floor'])} s")
        rise = max(timings[media]["rise"])
        rows += [
            Row(NAME, f"{path}, {count // 1000}k {what} over HTTP, whole body", export, "s",
                floor, floor_label, "≤ 3× floor", export <= 3 * floor, note=detail),
            Row(NAME, f"{path} throughput", count / export, "rows/s", count / floor,
                "psql rows/s"),
            Row(NAME, f"{path}: peak server RSS rise", rise / 1e6, "MB",
                sizes[media] / 1e6, "body size", "bounded (≪ body)",
                None if ctx.quick else rise < sizes[media] / 2,
                note="VmHWM reset before each export; the largest rise of the rounds"),
        ]
    return rows


async def _dialed_campaign(ctx, api: Api, pg: Pg, count: int) -> str:
    """A campaign of ``count`` contacts dialed to its end (every call answered): its id."""
    created = await api.create_campaign(contacts_csv(count, area=213), name="calls export",
                                        max_concurrent_calls=100)
    await api.start(created["id"])
    began = time.perf_counter()
    with trio.fail_after(600):
        while await campaign_status(pg, created["id"]) != "completed":
            await trio.sleep(0.5)
    attempts = await pg.fetchval("SELECT count(*) FROM attempts WHERE campaign_id = $1",
                                 uuid.UUID(created["id"]))
    if attempts != count:
        raise RuntimeError(f"the dialed campaign has {attempts} attempts, not {count}")
    ctx.log(f"export: {count} calls dialed in {time.perf_counter() - began:.0f} s")
    await pg.execute("ANALYZE attempts")
    return created["id"]


async def run(ctx) -> list[Row]:
    count = ctx.size(full=100_000, quick=10_000)
    rounds = ctx.size(full=ROUNDS, quick=2)
    async with fresh_database(NAME) as url, gateway_process(url) as gateway, \
            gateway.client(timeout=300) as client, Pg.connect(url) as pg:
        api = Api(client)
        created = await api.create_campaign(contacts_csv(count, wide=True), name="export")
        campaign_id = created["id"]
        names = list(created["import_report"]["columns"])
        stored = await pg.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1",
                                   uuid.UUID(campaign_id))
        if stored != count:
            raise RuntimeError(f"the campaign has {stored} contacts, not {count}")
        await pg.execute("ANALYZE contacts")
        floors = {media: floor_sql(campaign_id, names, media)
                  for media in ("csv", "jsonl", "raw")}
        raw_floors = [await psql_copy(url, floors["raw"], "WITH CSV HEADER")
                      for _ in range(rounds)]
        timings, sizes = await _alternate(ctx, url, gateway, client,
                                          f"/api/v1/campaigns/{campaign_id}/contacts",
                                          floors, rounds, "contacts")
        calls_id = await _dialed_campaign(ctx, api, pg, count)
        call_timings, call_sizes = await _alternate(
            ctx, url, gateway, client, f"/api/v1/campaigns/{calls_id}/calls",
            {media: calls_floor_sql(calls_id, media) for media in ("csv", "jsonl")},
            rounds, "calls")
        costs = await chunk_costs(url, campaign_id, tuple(names), count)
    ctx.log(f"export chunk of {costs['rows']} rows: read {costs['read_ms']:.1f} ms, encode "
            f"CSV {costs['csv_ms']:.1f} ms, JSONL {costs['jsonl_ms']:.1f} ms")

    rows = _rows(ctx, "contacts", "contacts, 3 custom fields", count, rounds, timings, sizes)
    rows += _rows(ctx, "calls", "calls", count, rounds, call_timings, call_sizes)
    raw = median(raw_floors)
    export_csv = median(timings["csv"]["export"])
    rows.append(Row(NAME, "contacts.csv against the rows as stored (info)", export_csv, "s",
                    raw, "psql \\copy, custom fields as their one JSON column",
                    note="not the export's columns: what reading the rows out of the table "
                         "costs at all, without flattening the custom fields"))
    chunk = f"one chunk ({costs['rows']:,} rows)"
    rows += [
        Row(NAME, f"{chunk}: read over asyncpg (rows decoded)", costs["read_ms"], "ms",
            note="the export's query on the event loop's asyncpg; best of 5"),
        Row(NAME, f"{chunk}: encode as CSV on the event loop", costs["csv_ms"], "ms",
            target="< 20 ms", holds=costs["csv_ms"] < 20,
            note=f"best of {ENCODE_REPEATS}, median {costs['csv_median_ms']:.1f} ms"),
        Row(NAME, f"{chunk}: encode as JSON lines on the event loop", costs["jsonl_ms"], "ms",
            target="< 20 ms", holds=costs["jsonl_ms"] < 20,
            note=f"best of {ENCODE_REPEATS}, median {costs['jsonl_median_ms']:.1f} ms"),
    ]
    return rows
