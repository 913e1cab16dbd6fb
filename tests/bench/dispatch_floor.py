"""The database floor of dispatch: the gateway's own claim and record statements
(``dialing.claim``, and ``dialing.record_results``, batched like the engine's recorder:
whatever accumulated while the previous write ran, up to 500; or, with an older
sql/queries, ``dialing.record_result`` once per call), issued the way the campaign actor
issues them (up to 100 calls in flight, claims of up to 50, 10 connections) by a bare
asyncio + asyncpg client: no trio, no trio-asyncio, no HTTP, no pool reset query, no
logging. What PostgreSQL can do for these statements on this machine.

    python -m tests.bench.dispatch_floor DATABASE_URL CAMPAIGN_ID  ->  JSON on stdout

The campaign must be ``running`` and no gateway may be dialing it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from gateway.sql import queries, query
from gateway.store.dialing import FRESH_WINDOW
from gateway.vocabulary import RETRYABLE

CONCURRENCY = 100
BATCH = 50
CONNECTIONS = 10
MAX_RECORD_BATCH = 500


def now() -> datetime:
    return datetime.now(UTC)


async def main(url: str, campaign_id: uuid.UUID) -> dict:
    claim_sql = query("dialing.claim")
    batched = "dialing.record_results" in queries()
    record_sql = query("dialing.record_results" if batched else "dialing.record_result")
    retryable = sorted(RETRYABLE)
    # Since dispositions (0008) a result also carries the agent's disposition, callback
    # time and notes.
    no_disposition = (None, None, None) if "$14::text[]" in record_sql else ()
    idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
    connections = [await asyncpg.connect(url) for _ in range(CONNECTIONS)]
    for conn in connections:
        idle.put_nowait(conn)

    async def run(method: str, sql: str, *args):
        conn = await idle.get()
        try:
            return await getattr(conn, method)(sql, *args)
        finally:
            idle.put_nowait(conn)

    slots = asyncio.Semaphore(CONCURRENCY)
    calls: set[asyncio.Task] = set()
    done = 0

    pending: list[tuple[tuple, asyncio.Future]] = []
    wakeup = asyncio.Event()

    async def recorder() -> None:
        nonlocal pending
        while True:
            await wakeup.wait()
            wakeup.clear()
            while pending:
                batch, pending = pending[:MAX_RECORD_BATCH], pending[MAX_RECORD_BATCH:]
                columns = list(zip(*[values for values, _ in batch], strict=True))
                try:
                    await run("fetch", record_sql, *columns, retryable)
                except Exception as exc:  # fail the calls waiting, not hang them
                    for _, written in batch:
                        written.set_exception(exc)
                    raise
                for _, written in batch:
                    written.set_result(None)

    async def record(values: tuple) -> None:
        if not batched:
            await run("fetchrow", record_sql, *values, retryable)
            return
        written = asyncio.get_running_loop().create_future()
        pending.append((values, written))
        wakeup.set()
        await written

    async def call(row) -> None:
        nonlocal done
        try:
            at = now()
            # As the engine records an answered sim call: connected at once, the contact
            # hanging up.
            await record((row["attempt_id"], "answered", at, at, 0.0, None, None, at,
                          "contact", None, None, *no_disposition))
            done += 1
        finally:
            slots.release()

    # The claim claims only under a live lease on the campaign's account: this client
    # takes it (the gateway has stopped, its leases released), as a process of its own.
    peer = uuid.uuid4()
    account_id = await connections[0].fetchval(
        "SELECT account_id FROM campaigns WHERE id = $1", campaign_id)
    leases = await connections[0].fetch(query("leases.acquire"), peer, [account_id], 3600.0)
    assert leases, "the account's lease is held by a live process"
    epoch = leases[0]["epoch"]
    total = await connections[0].fetchval("SELECT contacts_total FROM campaigns WHERE id = $1",
                                          campaign_id)
    writer = asyncio.create_task(recorder())
    started = time.perf_counter()
    from_seq = 0  # the same cursor the campaign actor keeps
    try:
        while True:
            await slots.acquire()
            taken = 1
            while taken < BATCH and not slots.locked():
                await slots.acquire()
                taken += 1
            rows = await run("fetch", claim_sql, campaign_id, now(), taken, from_seq,
                             FRESH_WINDOW, peer, epoch)
            from_seq = max([from_seq] + [row["seq"] + 1 for row in rows])
            for row in rows:
                task = asyncio.create_task(call(row))
                calls.add(task)
                task.add_done_callback(calls.discard)
            for _ in range(taken - len(rows)):
                slots.release()
            if not rows:
                if from_seq + FRESH_WINDOW < total:  # as the actor does: the next window
                    from_seq += FRESH_WINDOW
                    continue
                if not calls:
                    break
                await asyncio.wait(set(calls), return_when=asyncio.FIRST_COMPLETED)
        seconds = time.perf_counter() - started
    finally:
        writer.cancel()
        for conn in connections:
            await conn.close()
    return {"attempts": done, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], uuid.UUID(sys.argv[2])))))
