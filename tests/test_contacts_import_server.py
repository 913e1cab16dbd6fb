"""Pathological uploads to a real server: a bounded report, nothing half-written, and the
event loop keeps turning while the file is imported.

The loop's lag is measured by a task that sleeps 5 ms in a loop and records the worst
overshoot, in the server's own trio loop (the test server runs in-process). The target is
50 ms, and on an idle machine these uploads measure 15-25 ms; the assertion allows
`LAG_BOUND_SECONDS` because other test runs share the two cores (at a load average of 3.5
the OS alone delays a runnable thread by up to ~100 ms). Before the bounds, the blank-row
file stalled the loop for about a minute. The figure measured is printed (``pytest -s``).
"""

from __future__ import annotations

import gc

import trio
from conftest import us_number

LAG_BOUND_SECONDS = 0.2
MB = 1 << 20


class LagProbe:
    def __init__(self) -> None:
        self.worst = 0.0
        self.samples = 0

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            before = trio.current_time()
            await trio.sleep(0.005)
            self.worst = max(self.worst, trio.current_time() - before - 0.005)
            self.samples += 1


async def _upload_measuring_lag(create_campaign, data: bytes):
    probe = LagProbe()
    # The gateway runs in this test process, which holds every earlier test's objects: a
    # full collection over them stalled the loop ~0.35 s once. `gateway serve` freezes its
    # start-up heap (serve._tune_gc); the same here, so the lag measured is the import's.
    gc.collect()
    gc.freeze()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(probe.run)
            response = await create_campaign(data)
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()
    print(f"{len(data) / 1e6:.1f} MB upload: worst loop lag {probe.worst * 1000:.1f} ms "
          f"over {probe.samples} samples; response {len(response.content) / 1e3:.0f} kB")
    return response, probe


async def _counts(db) -> tuple[int, int]:
    return (await db.fetchval("testing.count_campaigns"),
            await db.fetchval("testing.count_contacts"))


async def test_9_mb_of_blank_rows_gives_a_bounded_report_without_stalling_the_loop(
        create_campaign, api):
    blanks = 9 * MB
    data = b"phone_number,name\n" + b"\n" * blanks + f"{us_number(0)},Ann\n".encode()
    response, probe = await _upload_measuring_lag(create_campaign, data)
    assert response.status_code == 201, response.text[:500]
    report = response.json()["import_report"]
    assert report["rows_accepted"] == 1 and report["rows_rejected"] == blanks
    assert report["rejected_counts"] == {"empty": blanks, "invalid_number": 0,
                                         "duplicate": 0, "column_count": 0,
                                         "do_not_call": 0, "invalid_timezone": 0}
    assert report["rejected_truncated"] is True and report["delimiter"] == ","
    assert [r["row"] for r in report["rejected"]] == list(range(1, 1001))
    assert len(response.content) < 200_000
    assert probe.samples > 10 and probe.worst < LAG_BOUND_SECONDS
    campaign = (await api.get(f"/api/v1/campaigns/{response.json()['id']}")).json()
    assert campaign["contact_counts"]["total"] == 1


async def test_9_mb_of_rejected_rows_is_a_400_with_exact_counts_and_nothing_written(
        create_campaign, db):
    rows = 9 * MB // 8
    data = b"phone_number\n" + b"bogus\n\n" * (rows // 2) + b"55555\n" * (rows // 2)
    response, probe = await _upload_measuring_lag(create_campaign, data)
    assert response.status_code == 400, response.text[:500]
    error = response.json()["error"]
    assert error["field"] == "contacts"
    half = rows // 2
    assert error["message"] == (f"contacts: The file has no valid rows: all {3 * half} data "
                                f"rows were rejected ({2 * half} invalid_number, {half} empty).")
    assert await _counts(db) == (0, 0)
    assert probe.worst < LAG_BOUND_SECONDS


async def test_many_columns_and_long_cells_are_a_clear_400(create_campaign, db):
    header = ",".join(["phone_number"] + [f"c{i}" for i in range(5000)]).encode()
    response = await create_campaign(header + b"\n" + us_number(0).encode() + b"\n")
    assert response.status_code == 400
    assert "5,001 columns" in response.json()["error"]["message"]
    cell = b'"' + b"x" * 200_000 + b'"'
    response = await create_campaign(b"phone_number,note\n" + us_number(0).encode() + b","
                                     + cell + b"\n")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "a cell is longer than 131,072 characters" in message and "data row 1" in message
    response = await create_campaign(b"phone_number,note\n" + us_number(0).encode() + b","
                                     + b"y" * 300_000 + b"\n")
    assert response.status_code == 400
    assert "Line 2 of the file is longer than 262,144" in response.json()["error"]["message"]
    assert await _counts(db) == (0, 0)


async def test_a_semicolon_export_of_national_numbers_is_imported(create_campaign, api):
    lines = ["phone_number;first_name;note"]
    for i in range(3000):
        digits = us_number(i)[2:]
        style = i % 3
        shown = (f"({digits[:3]}) {digits[3:6]}-{digits[6:]}" if style == 0 else
                 f"{digits[:3]}.{digits[3:6]}.{digits[6:]}" if style == 1 else digits)
        lines.append(f"{shown};Name {i};\"1,5; ok\"")
    response = await create_campaign(("\r\n".join(lines) + "\r\n").encode())
    assert response.status_code == 201, response.text[:500]
    report = response.json()["import_report"]
    assert (report["rows_accepted"], report["rows_rejected"], report["delimiter"]) == (3000, 0, ";")
    page = (await api.get(f"/api/v1/campaigns/{response.json()['id']}/contacts",
                          params={"page": 29})).json()
    assert [c["phone_number"] for c in page["data"]] == [us_number(i) for i in range(2900, 3000)]
    assert page["data"][0]["custom_fields"] == {"first_name": "Name 2900", "note": "1,5; ok"}
