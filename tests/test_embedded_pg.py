"""Tests for gateway.embedded_pg: real clusters started from the system PostgreSQL binaries."""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import stat
import tempfile

import asyncpg
import pytest
import structlog
import trio
import trio_asyncio

from gateway.embedded_pg import (
    EmbeddedPostgresError,
    _Cluster,
    _find_bindir,
    _server_user,
    embedded_postgres,
)
from gateway.embedded_pg_paths import ROOT_CLUSTERS, linked_home

try:
    _find_bindir()
except EmbeddedPostgresError:
    pytest.skip("no PostgreSQL binaries on this machine", allow_module_level=True)


@pytest.fixture
def data_dir():
    """A data dir under a folder the postgres user can traverse.

    pytest's tmp_path is 0700 under /tmp/pytest-of-root when running as root, which the
    module rightly refuses (see test_untraversable_parent_as_root)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="gw-embedded-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    path = base / "data"
    yield path
    # Safety net: never leave a server behind, even when a test failed half-way.
    if (path / "pg" / "postmaster.pid").exists():
        cluster = _Cluster(path, _find_bindir(), _server_user())
        cluster.run("pg_ctl", "stop", "-D", cluster.pgdir, "-m", "immediate", "-w")
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def log_events():
    """Every structlog event of the test, whatever level the project's logging config filters at."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with structlog.testing.capture_logs() as events:
            yield events
    finally:
        structlog.configure(**saved)


async def fetchval(dsn: str, sql: str, method: str = "fetchval"):
    async with trio_asyncio.open_loop():
        conn = await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)
        try:
            return await trio_asyncio.aio_as_trio(getattr(conn, method))(sql)
        finally:
            await trio_asyncio.aio_as_trio(conn.close)()


async def running(data_dir: pathlib.Path) -> bool:
    cluster = _Cluster(data_dir, _find_bindir(), _server_user())
    return await trio.to_thread.run_sync(cluster.running)


async def test_start_connect_stop(data_dir):
    with trio.fail_after(120):
        async with embedded_postgres(data_dir) as dsn:
            assert dsn.startswith("postgresql://gateway:") and "@127.0.0.1:" in dsn
            assert await fetchval(dsn, "SELECT 1") == 1
            assert await running(data_dir)
        assert not await running(data_dir)
        assert not (data_dir / "pg" / "postmaster.pid").exists()


async def test_second_start_reuses_cluster(data_dir, log_events):
    with trio.fail_after(120):
        async with embedded_postgres(data_dir) as dsn:
            await fetchval(dsn, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
                           "execute")
        async with embedded_postgres(data_dir) as dsn2:
            assert await fetchval(dsn2, "SELECT x FROM kept") == 42
        assert [e["event"] for e in log_events] == [
            "embedded_pg.initdb", "embedded_pg.started", "embedded_pg.stopped",
            "embedded_pg.started", "embedded_pg.stopped",  # no second initdb
        ]


async def test_nested_users_last_one_stops(data_dir, log_events):
    # flock locks belong to the open file description, so two contexts in one process
    # exercise the same code paths as two gateway processes.
    with trio.fail_after(120):
        async with embedded_postgres(data_dir) as outer:
            async with embedded_postgres(data_dir) as inner:
                assert inner == outer
                assert await fetchval(inner, "SELECT 2") == 2
            assert await running(data_dir)
            assert await fetchval(outer, "SELECT 3") == 3
        assert not await running(data_dir)
        assert [e["event"] for e in log_events] == [
            "embedded_pg.initdb",
            "embedded_pg.started",
            "embedded_pg.reused",
            "embedded_pg.left_running",
            "embedded_pg.stopped",
        ]


async def test_cancellation_stops_cluster(data_dir):
    with trio.fail_after(120):
        with trio.CancelScope() as scope:
            async with embedded_postgres(data_dir):
                scope.cancel()
                await trio.sleep(60)
        assert scope.cancelled_caught
        assert not await running(data_dir)
        # Locks were released: a new start works and is the only user.
        async with embedded_postgres(data_dir) as dsn:
            assert await fetchval(dsn, "SELECT 4") == 4
        assert not await running(data_dir)


async def test_password_file_private_and_never_logged(data_dir, log_events, capsys):
    with trio.fail_after(120):
        async with embedded_postgres(data_dir) as dsn:
            pass
        password = (data_dir / "pg-password").read_text().strip()
        assert password and f":{password}@" in dsn
        st = (data_dir / "pg-password").stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert len(log_events) == 3 and password not in repr(log_events)
        out, err = capsys.readouterr()
        assert password not in out + err
        assert password not in (data_dir / "pg.log").read_text()
        assert not list(data_dir.glob(".initdb-pwfile*"))  # the initdb password file is gone


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
async def test_untraversable_parent_as_root_keeps_the_cluster_outside():
    with trio.fail_after(120):
        private = pathlib.Path(tempfile.mkdtemp(prefix="gw-private-"))  # mode 0700, root's
        data_dir = private / "data"
        try:
            async with embedded_postgres(data_dir) as dsn:
                assert await fetchval(dsn, "SELECT 6") == 6
            home = linked_home(data_dir)
            assert home is not None and ROOT_CLUSTERS in home.parents
            assert (home / "pg").stat().st_uid == _server_user().pw_uid
            assert (data_dir / "pg-password").exists()  # root's files stay in data_dir
            assert not list(home.glob(".initdb-pwfile*"))
            async with embedded_postgres(data_dir) as dsn:  # reused, not a second initdb
                assert await fetchval(dsn, "SELECT 7") == 7
            assert linked_home(data_dir) == home
        finally:
            if (home := linked_home(data_dir)) is not None:
                shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(private)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
async def test_cluster_in_place_behind_a_closed_folder_is_a_clear_error(data_dir):
    with trio.fail_after(120):
        async with embedded_postgres(data_dir):
            pass
        os.chmod(data_dir.parent, 0o700)  # the operator closed a folder above the cluster
        with pytest.raises(EmbeddedPostgresError) as exc:
            async with embedded_postgres(data_dir):
                pytest.fail("must not start")
        message = str(exc.value)
        assert str(data_dir.parent) in message and "chmod o+x" in message
        assert "\n" not in message


async def test_initdb_failure_is_reported_and_recoverable(data_dir):
    with trio.fail_after(120):
        pgdir = data_dir / "pg"
        pgdir.mkdir(parents=True, mode=0o700)
        (pgdir / "stray").write_text("not a cluster")
        if (user := _server_user()) is not None:
            os.chmod(data_dir, 0o711)
            os.chown(pgdir, user.pw_uid, user.pw_gid)
        with pytest.raises(EmbeddedPostgresError, match="initdb failed") as exc:
            async with embedded_postgres(data_dir):
                pytest.fail("must not start")
        assert "not empty" in str(exc.value)  # initdb's own reason, from its output
        (pgdir / "stray").unlink()
        async with embedded_postgres(data_dir) as dsn:  # locks were released on the error path
            assert await fetchval(dsn, "SELECT 5") == 5
        assert not await running(data_dir)
