"""README's first command as root from a clone in a private (0700) home folder: the most
common container set-up. ``initdb`` refuses root, so the cluster runs as ``postgres``, who
cannot enter the clone: it must just work anyway (the cluster is kept where that user can
reach it, the API key stays in ``<data_dir>/api_key``), and a second start reuses it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import tempfile
from pathlib import Path

import pytest
from gateway_process import GRACE_SECONDS, GatewayProcess, clean_env, needs_pg_binaries
from ports import free_tcp_port

from gateway.embedded_pg import _Cluster, _find_bindir, _server_user
from gateway.embedded_pg_paths import ROOT_CLUSTERS, linked_home

KEY_LINE = re.compile(r"^gw_[A-Za-z0-9_-]{43}$", re.MULTILINE)


pytestmark = [
    needs_pg_binaries,
    pytest.mark.skipif(os.geteuid() != 0, reason="the set-up under test is running as root"),
]


@pytest.fixture
def private_home():
    """A fresh 0700 folder of root's (what /root and tempfile.mkdtemp give), with a "clone"
    in it; never leaves a server or an outside cluster folder behind."""
    home = Path(tempfile.mkdtemp(prefix="gw-home-"))
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    clone = home / "gateway"
    clone.mkdir()
    yield clone
    data_dir = clone / "gateway-data"
    if (data_dir / "pg" / "postmaster.pid").exists():
        cluster = _Cluster(data_dir, _find_bindir(), _server_user())
        cluster.run("pg_ctl", "stop", "-D", cluster.pgdir, "-m", "immediate", "-w")
    outside = linked_home(data_dir)
    if outside is not None and ROOT_CLUSTERS in outside.parents:
        shutil.rmtree(outside, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


def _process(clone: Path, name: str) -> GatewayProcess:
    # README's command exactly: no data_dir, no database URL, no key; only a free port.
    return GatewayProcess(clone, clean_env(GATEWAY_HTTP_PORT=str(free_tcp_port()),
                                           GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS)),
                          name)


@pytest.mark.timeout(150)
async def test_readme_command_as_root_in_a_private_home(private_home):
    data_dir = private_home / "gateway-data"
    first = _process(private_home, "first")
    try:
        await first.start()
        await first.wait_healthy(90)
        [key] = KEY_LINE.findall(first.stdout)
        async with first.client(key) as api:
            assert (await api.get("/api/v1/call-limits")).status_code == 200
            created = await api.post("/api/v1/phone-numbers", json={"number": "+14155550100"})
            assert created.status_code == 201, created.text
        assert await first.stop(signal.SIGINT) == 0
    finally:
        await first.kill()
    assert "Traceback" not in first.stderr

    # The key stays in the data dir, root's and private; the cluster lives outside the 0700
    # tree, in a folder of the postgres user's, and data_dir/pg points at it.
    key_file = data_dir / "api_key"
    assert key_file.read_text() == key + "\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.stat().st_uid == 0
    assert (data_dir / "pg").is_symlink()
    outside = linked_home(data_dir)
    assert ROOT_CLUSTERS in outside.parents
    postgres = _server_user()
    assert (outside / "pg").stat().st_uid == postgres.pw_uid
    assert (outside / "data_dir").read_text().strip() == str(data_dir.resolve())
    assert not (outside / "pg" / "postmaster.pid").exists()  # stopped with the gateway
    assert not (data_dir / "pg-password").stat().st_mode & 0o077

    second = _process(private_home, "second")
    try:
        await second.start()
        await second.wait_healthy(90)
        assert "gw_" not in second.stdout  # no new account, no new key
        async with second.client(key) as api:  # the same key works: the same cluster
            numbers = await api.get("/api/v1/phone-numbers")
            assert numbers.status_code == 200, numbers.text
            assert [n["number"] for n in numbers.json()["data"]] == ["+14155550100"]
        assert await second.stop(signal.SIGINT) == 0
    finally:
        await second.kill()
    events = [e["event"] for e in second.events()]
    assert "embedded_pg.initdb" not in events and "embedded_pg.started" in events
    assert linked_home(data_dir) == outside
