"""1. CSV ingest: a 100k-row, ~10 MB contacts CSV (phone_number + 3 custom columns) uploaded
over HTTP until the 201 with every contact stored, against the floor: ``psql \\copy`` of
the same file into a plain four-column table of the same database.

Repetitions alternate floor and upload (floor, upload, floor, upload...) and the medians
are compared. Peak server memory: the gateway's VmHWM is reset (``clear_refs``) before
each upload; the figure is the largest rise of the peak over the RSS before the upload.

Where the upload's time goes (informational, same repetitions): the gateway's own CSV
parser (``gateway.contacts_csv.parse_contacts``, timed in this process) and ``psql \\copy``
of the payload it produces into ``contacts`` (its heap, two indexes, the counts trigger:
the database's share of the upload). The gateway parses while PostgreSQL copies, so the
rest of the upload is HTTP and multipart, the first chunk, the tail and the commit.

Two files are measured the same way in the same run: E.164 numbers (``+12122000000``) and
national ones in the default region US, a third each ``(212) 200-0000``, ``212.200.0000``
and ``2122000000`` (same custom columns). Then a pathological file, ~9 MB of blank rows
and one contact, uploaded once: its time, the response's size, the peak RSS rise.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import trio

from gateway.contacts_csv import COPY_COLUMNS, parse_contacts
from tests.bench.harness import (
    Api,
    Pg,
    Row,
    contacts_csv,
    expect,
    fresh_database,
    gateway_process,
    maybe_profile,
    median,
)

NAME = "ingest"
FLOOR_TABLE = "bench_copy_floor"
PAYLOAD_COLUMNS = ", ".join(COPY_COLUMNS)


async def psql_copy(url: str, path: Path, target: str,
                    options: str = "FORMAT csv, HEADER") -> float:
    """Seconds for ``psql \\copy`` of the file (the psql process's wall time)."""
    command = ["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c",
               f"\\copy {target} FROM '{path}' WITH ({options})"]
    started = time.perf_counter()
    await trio.run_process(command, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def parse(path: Path, campaign_id: str, payload: Path) -> float:
    """Seconds for the gateway's parser on the file; its COPY payload goes to ``payload``."""
    started = time.perf_counter()
    with open(path, "rb") as source:
        parsed = parse_contacts(source, campaign_id=campaign_id, default_region="US")
    seconds = time.perf_counter() - started
    with parsed.copy_data as data, open(payload, "wb") as out:
        shutil.copyfileobj(data, out)
    payload.chmod(0o644)
    return seconds


def national_csv(count: int) -> bytes:
    """`contacts_csv(count, wide=True)` with the numbers written the three usual US ways."""
    lines = contacts_csv(count, wide=True).decode().split("\n")
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        if not line:
            continue
        phone, rest = line.split(",", 1)
        d = phone[2:]
        shown = (f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}", d)[i % 3]
        out.append(f"{shown},{rest}")
    return ("\n".join(out) + "\n").encode()


async def _measure(ctx, label: str, csv: bytes, rows_wanted: int, repetitions: int, tmp: Path,
                   url: str, gateway, client, pg, api) -> list[Row]:
    path = Path(tmp) / f"contacts-{label}.csv"
    path.write_bytes(csv)
    path.chmod(0o644)
    body, content_type = api.campaign_body(csv, name=f"ingest {label}")
    floors, uploads, rises, peaks, parses, payload_copies = [], [], [], [], [], []
    payload = Path(tmp) / "payload.bin"
    for repetition in range(repetitions):
        await pg.execute(f"TRUNCATE {FLOOR_TABLE}")
        floors.append(await psql_copy(
            url, path, f"{FLOOR_TABLE} (phone_number, first_name, company, note)"))
        copied = await pg.fetchval(f"SELECT count(*) FROM {FLOOR_TABLE}")
        assert copied == rows_wanted, copied

        # The database's share: the gateway's payload COPYed into contacts of a
        # draft campaign (made with one contact, deleted first).
        shell = await api.create_campaign(b"phone_number\n+12025550143\n", name="payload")
        await pg.execute("DELETE FROM contacts WHERE campaign_id = $1", uuid.UUID(shell["id"]))
        parses.append(await trio.to_thread.run_sync(parse, path, shell["id"], payload))
        payload_copies.append(await psql_copy(url, payload, f"contacts ({PAYLOAD_COLUMNS})",
                                              "FORMAT binary"))

        await trio.sleep(0.5)
        before = gateway.rss()
        gateway.reset_peak()
        async with maybe_profile(gateway, f"{NAME}-{label}-{repetition}", ctx.profile_dir,
                                 rate=1000):
            started = time.perf_counter()
            response = await client.post("/api/v1/campaigns", content=body,
                                         headers={"Content-Type": content_type})
            uploads.append(time.perf_counter() - started)
        created = expect(response, 201)
        peaks.append(gateway.peak_rss())
        rises.append(peaks[-1] - before)
        stored = await pg.fetchval("SELECT count(*) FROM contacts WHERE campaign_id = $1",
                                   uuid.UUID(created["id"]))
        accepted = created["import_report"]["rows_accepted"]
        if not (accepted == stored == rows_wanted):
            raise RuntimeError(f"{label}: upload stored {stored} contacts, accepted "
                               f"{accepted}, of {rows_wanted}")
        ctx.log(f"ingest {label} {repetition + 1}/{repetitions}: copy {floors[-1]:.2f} s, "
                f"upload {uploads[-1]:.2f} s (parse {parses[-1]:.2f} s, payload copy "
                f"{payload_copies[-1]:.2f} s), peak +{rises[-1] / 1e6:.0f} MB")
    rss_after = gateway.rss()

    size = len(csv)
    upload, floor = median(uploads), median(floors)
    rise = max(rises)
    detail = (f"{rows_wanted} rows, {size / 1e6:.2f} MB, median of {repetitions}; "
              f"uploads {', '.join(f'{u:.2f}' for u in uploads)} s; "
              f"copies {', '.join(f'{f:.2f}' for f in floors)} s")
    what = f"{label} numbers"
    return [
        Row(NAME, f"upload {rows_wanted // 1000}k-row CSV ({what}) until 201 (all stored)",
            upload, "s", floor, "psql \\copy same file", "≤ 3× floor", upload <= 3 * floor,
            note=detail),
        Row(NAME, f"throughput ({what})", rows_wanted / upload, "rows/s", rows_wanted / floor,
            "psql \\copy rows/s"),
        Row(NAME, f"of the upload ({what}): gateway's CSV parser (parse_contacts)",
            median(parses), "s", upload, "upload",
            note="timed in the benchmark process, same code and file"),
        Row(NAME, f"of the upload ({what}): COPY of its payload into contacts",
            median(payload_copies), "s", upload, "upload",
            note=f"psql \\copy. The parse runs beside the COPY (a worker thread), so the "
                 f"upload's own share is the rest, {upload - median(payload_copies):.2f} s: "
                 "HTTP and multipart, the first chunk, the tail and the commit"),
        Row(NAME, f"peak server RSS rise during upload ({what})", rise / 1e6, "MB",
            size / 1e6, "CSV file size", "< 10× file (well under)",
            # --quick's 1 MB file is smaller than the import's fixed cost (a worker thread,
            # the chunks in flight: ~10 MB), so the ratio says nothing there.
            None if ctx.quick else rise < 10 * size,
            note=f"peak RSS {max(peaks) / 1e6:.0f} MB absolute; RSS after uploads "
                 f"{rss_after / 1e6:.0f} MB"
                 + ("; --quick: not judged (the file is smaller than the fixed cost)"
                    if ctx.quick else "")),
    ]


async def _pathological(ctx, gateway, client, api) -> list[Row]:
    blanks = ctx.size(full=9 * 1024 * 1024, quick=1024 * 1024)
    csv = b"phone_number,first_name\n" + b"\n" * blanks + b"+12122000000,Ann\n"
    body, content_type = api.campaign_body(csv, name="ingest blank rows")
    await trio.sleep(0.5)
    before = gateway.rss()
    gateway.reset_peak()
    started = time.perf_counter()
    response = await client.post("/api/v1/campaigns", content=body,
                                 headers={"Content-Type": content_type})
    seconds = time.perf_counter() - started
    created = expect(response, 201)
    rise = gateway.peak_rss() - before
    report = created["import_report"]
    if report["rows_rejected"] != blanks or len(report["rejected"]) != 1000:
        raise RuntimeError(f"blank rows: report {report['rows_rejected']} rejected, "
                           f"{len(report['rejected'])} listed")
    ctx.log(f"ingest blank rows: {seconds:.2f} s, response {len(response.content) / 1e3:.0f} kB,"
            f" peak +{rise / 1e6:.0f} MB")
    size = len(csv)
    note = f"{blanks:,} blank rows and one contact, {size / 1e6:.1f} MB; one upload"
    return [
        Row(NAME, "pathological: blank rows, upload until 201", seconds, "s", note=note),
        Row(NAME, "pathological: response size", len(response.content) / 1e3, "kB",
            target="bounded (1,000 rows listed)", holds=len(response.content) < 300_000),
        Row(NAME, "pathological: peak server RSS rise", rise / 1e6, "MB", size / 1e6,
            "CSV file size", "< 10× file", None if ctx.quick else rise < 10 * size),
    ]


async def run(ctx) -> list[Row]:
    rows_wanted = ctx.size(full=100_000, quick=10_000)
    repetitions = ctx.size(full=5, quick=2)
    files = {"E.164": contacts_csv(rows_wanted, wide=True), "national": national_csv(rows_wanted)}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        async with fresh_database(NAME) as url, gateway_process(url) as gateway, \
                gateway.client(timeout=300) as client, Pg.connect(url) as pg:
            await pg.execute(f"CREATE TABLE {FLOOR_TABLE} (phone_number text, first_name text,"
                             " company text, note text)")
            api = Api(client)
            await api.references()
            # The pathological file first: after the big uploads the process's heap is
            # already as large as its import needs, and the RSS rise would read ~0.
            pathological = await _pathological(ctx, gateway, client, api)
            for label, csv in files.items():
                rows += await _measure(ctx, label, csv, rows_wanted, repetitions, Path(tmp),
                                       url, gateway, client, pg, api)
    return rows + pathological
