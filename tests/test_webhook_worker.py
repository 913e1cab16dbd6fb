"""The webhook delivery child process of ``gateway serve``: it delivers at a lower CPU
priority, is restarted when it dies, and stops with the gateway."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import test_engine_faults as faults
import trio
from engine_helpers import engine_settings, rule, wait_status
from test_engine_faults import serving
from webhook_receiver import receiving

pytestmark = pytest.mark.timeout(60)


def _children() -> list[int]:
    """This process's children running the delivery worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"gateway.webhook_worker" in cmdline:
            found.append(int(entry.name))
    return found


def _niceness(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])


async def _one_child() -> int:
    while len(children := _children()) != 1:
        await trio.sleep(0.02)
    return children[0]


async def test_a_niced_child_delivers_is_restarted_when_killed_and_stops_with_the_gateway(
        database_url, tmp_path):
    overrides = engine_settings([rule("*", "answered")])
    overrides["webhooks"] = {"worker": "process", "poll_seconds": 0.02}
    async with receiving() as receiver:
        async with serving(database_url, tmp_path, overrides) as gateway, \
                gateway.client() as api:
            with trio.fail_after(15):
                child = await _one_child()
            assert _niceness(child) == _niceness(os.getpid()) + 10
            created = (await api.post("/api/v1/webhooks", json={
                "url": receiver.url, "events": ["campaign.completed"]})).json()
            receiver.secret = created["secret"]
            first = await faults.create_campaign(api, b"phone_number\n+12125551000\n")
            await faults.start(api, first)
            await wait_status(api, first, "completed")
            with trio.fail_after(15):
                await receiver.until(lambda r: len(r.acked) == 1)
            os.kill(child, signal.SIGKILL)
            second = await faults.create_campaign(api, b"phone_number\n+12125551001\n")
            await faults.start(api, second)
            await wait_status(api, second, "completed")
            with trio.fail_after(20):
                while (found := _children()) in ([], [child]):
                    await trio.sleep(0.05)
                await receiver.until(lambda r: len(r.acked) == 2)
            assert found != [child]
        assert all(r.verified for r in receiver.acked)
        assert [r.event["data"]["campaign"]["id"] for r in receiver.acked] == [first, second]
    with trio.fail_after(10):
        while _children():
            await trio.sleep(0.05)
