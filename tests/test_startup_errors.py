"""The front door: every start-up error a user can cause is one plain line on stderr that
names the cause and the fix; a non-zero exit; no traceback, no exception group.

Each test runs the real command (``.venv/bin/gateway ...``) as a subprocess with a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from gateway_process import GatewayProcess, clean_env, have_pg_binaries, needs_pg_binaries
from ports import free_tcp_port

from gateway.embedded_pg import _Cluster, _server_user

GATEWAY = str(Path(sys.executable).with_name("gateway"))
TIMEOUT = 60



def gateway(*args: str, cwd: Path, timeout: float = TIMEOUT, **env: str):
    """Run the command; return (result, seconds it took)."""
    began = time.monotonic()
    result = subprocess.run([GATEWAY, *args], cwd=cwd, env=clean_env(**env),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout)
    return result, time.monotonic() - began


def the_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The one plain (non-JSON-log) line of stderr, checked for the front door's promises."""
    assert result.returncode != 0, result.stderr
    for forbidden in ("Traceback", "ExceptionGroup", "sub-exception", "Exceptions from Trio"):
        assert forbidden not in result.stderr, result.stderr
    plain = []
    for line in result.stderr.splitlines():
        try:
            json.loads(line)
        except ValueError:
            plain.append(line)
    assert len(plain) == 1, result.stderr
    line = plain[0]
    assert line.startswith("gateway: ") and "Fix:" in line, line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def test_http_port_in_use(database_url, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result, _ = gateway("serve", cwd=tmp_path, GATEWAY_DATABASE_URL=database_url,
                            GATEWAY_HTTP_PORT=str(port))
    the_line(result, f"127.0.0.1:{port}", "in use", "http.port")


def test_unreachable_database_is_a_bounded_wait(tmp_path):
    port = free_tcp_port()  # nothing listens there
    url = f"postgresql://someone:PWclosedport@127.0.0.1:{port}/db?sslpassword=PWquery"
    result, seconds = gateway("serve", cwd=tmp_path, GATEWAY_DATABASE_URL=url,
                              GATEWAY_DATABASE_CONNECT_TIMEOUT_SECONDS="1.5")
    line = the_line(result, f"postgresql://someone:***@127.0.0.1:{port}/db?sslpassword=***",
                    "after 1.5 s", "database.url", "database.connect_timeout_seconds")
    assert seconds < 20, seconds
    assert "PWclosedport" not in result.stderr + result.stdout and "PWquery" not in line
    # It did wait (and said so in the log) rather than give up at the first refusal.
    assert any(json.loads(line)["event"] == "database.unavailable"
               for line in result.stderr.splitlines() if line.startswith("{"))


@pytest.mark.parametrize("command", [("accounts", "list"), ("migrate",)])
def test_admin_commands_fail_within_seconds(tmp_path, command):
    # The default connect timeout (30 s) applies to serve; administrative commands give up
    # after a few seconds.
    url = f"postgresql://someone:PWadmin@127.0.0.1:{free_tcp_port()}/db"
    result, seconds = gateway(*command, cwd=tmp_path, GATEWAY_DATABASE_URL=url)
    the_line(result, "cannot reach the database", "someone:***@127.0.0.1")
    assert seconds < 15, seconds
    assert "PWadmin" not in result.stderr + result.stdout


def test_database_that_does_not_exist(database_url, tmp_path):
    missing = database_url.rsplit("/", 1)[0] + "/gateway_no_such_database"
    result, _ = gateway("serve", cwd=tmp_path, GATEWAY_DATABASE_URL=missing)
    the_line(result, "gateway_no_such_database", "does not exist", "database.url")


@pytest.fixture(scope="module")
def password_cluster():
    """An embedded cluster (password auth, unlike the test server's trust) for wrong-password
    tests: its URL with the right password."""
    if not have_pg_binaries():
        pytest.skip("no PostgreSQL server binaries on this machine")
    base = Path(tempfile.mkdtemp(prefix="gw-startup-pg-", dir="/tmp"))
    os.chmod(base, 0o755)
    cluster = _Cluster(base / "data", None, _server_user())
    try:
        cluster.prepare()
        port, _ = cluster.start_or_join()
        yield f"postgresql://gateway:{cluster.secret}@127.0.0.1:{port}/postgres"
    finally:
        if (cluster.pgdir / "postmaster.pid").exists():
            cluster.run("pg_ctl", "stop", "-D", cluster.pgdir, "-m", "immediate", "-w")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_wrong_database_password(password_cluster, tmp_path, where):
    wrong = "PWwrong-" + where
    host = password_cluster.rsplit("@", 1)[1]
    url = (f"postgresql://gateway:{wrong}@{host}" if where == "userinfo"
           else f"postgresql://gateway@{host}?password={wrong}")
    result, seconds = gateway("serve", cwd=tmp_path, GATEWAY_DATABASE_URL=url)
    the_line(result, "refused the password", "database.url")
    assert wrong not in result.stderr + result.stdout
    assert seconds < 20  # refused: no point waiting for the connect timeout


def serve_sip(database_url: str, tmp_path: Path, *, proxy: str, bind_host: str):
    """``gateway serve`` on the SIP adapter (both ports free: only what is named can fail)."""
    return gateway("serve", cwd=tmp_path, GATEWAY_DATABASE_URL=database_url,
                   GATEWAY_HTTP_PORT="0", GATEWAY_TELEPHONY_ADAPTER="sip",
                   GATEWAY_TELEPHONY_SIP_PROXY=proxy, GATEWAY_TELEPHONY_SIP_BIND_HOST=bind_host,
                   GATEWAY_TELEPHONY_SIP_BIND_PORT="0")[0]


def test_sip_bind_address_not_on_this_machine(database_url, tmp_path):
    # As root every port binds: an address not on this machine (TEST-NET-1) is refused the
    # same way (EADDRNOTAVAIL). Nothing is sent anywhere.
    result = serve_sip(database_url, tmp_path, proxy="127.0.0.1:5060", bind_host="192.0.2.1")
    the_line(result, "SIP", "192.0.2.1", "telephony.sip.bind_host")


def test_sip_proxy_that_does_not_resolve(database_url, tmp_path):
    result = serve_sip(database_url, tmp_path, proxy="trunk.gateway-test.invalid:5060",
                       bind_host="127.0.0.1")
    the_line(result, "trunk.gateway-test.invalid", "telephony.sip.proxy")


# Other shapes (non-ASCII, a newline, too long) are covered by the key-shape property in
# test_startup_errors_units.py: both sides use the same rule.
@pytest.mark.parametrize("key", ["k" * 31, "gw_" + "k" * 20 + " " + "k" * 20],
                         ids=["31-chars", "space"])
def test_bootstrap_key_auth_would_refuse_is_refused_at_start_up(tmp_path, key):
    # Checked before anything starts: the (unreachable) database is never tried.
    url = f"postgresql://u@127.0.0.1:{free_tcp_port()}/db"
    result, seconds = gateway("serve", cwd=tmp_path, GATEWAY_DATABASE_URL=url,
                              GATEWAY_BOOTSTRAP_API_KEY=key)
    line = the_line(result, "GATEWAY_BOOTSTRAP_API_KEY", "32")
    assert key.strip() not in line  # a key is never echoed
    assert "database.unavailable" not in result.stderr and seconds < 20


async def test_bootstrap_key_of_32_url_safe_characters_works(database_url, tmp_path):
    key = "My-own_key-0123456789abcdefghijk"  # 32 characters, no gw_ prefix
    assert len(key) == 32
    process = GatewayProcess(tmp_path, clean_env(
        GATEWAY_DATABASE_URL=database_url, GATEWAY_HTTP_PORT=str(free_tcp_port()),
        GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS="2", GATEWAY_BOOTSTRAP_API_KEY=key), "gateway")
    try:
        await process.start()
        await process.wait_healthy()
        async with process.client(key) as api:
            response = await api.get("/api/v1/call-limits")
            assert response.status_code == 200, response.text
        async with process.client(key[:-1] + "x") as api:
            assert (await api.get("/api/v1/call-limits")).status_code == 401
        assert await process.stop() == 0
    finally:
        await process.kill()
    assert key not in process.stderr


@needs_pg_binaries
def test_cluster_of_a_version_not_installed(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="gw-startup-version-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        data_dir = base / "data"
        (data_dir / "pg").mkdir(parents=True)
        (data_dir / "pg" / "PG_VERSION").write_text("99\n")  # a cluster made by PostgreSQL 99
        (data_dir / "pg-password").write_text("x\n")
        result, _ = gateway("serve", cwd=base, GATEWAY_DATABASE_DATA_DIR=str(data_dir))
        the_line(result, "PostgreSQL 99", "postgresql-99", str(data_dir / "pg"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    result, _ = gateway("serve", cwd=tmp_path,
                        GATEWAY_DATABASE_DATA_DIR=str(tmp_path / "not-a-folder"))
    the_line(result, "not-a-folder", "database.data_dir")


# A fault no translation knows, injected into the real command (no database needed: the
# connection is faked too).
_UNFORESEEN = """
import sys
import gateway.serve as serve

class FakeDatabase:
    async def close(self):
        pass

async def opened(*args, **kwargs):
    return FakeDatabase()

async def broken(*args, **kwargs):
    raise RuntimeError("something nobody foresaw")

serve.open_database, serve.migrate = opened, broken
from gateway.cli import main
sys.exit(main(["serve"]))
"""


def test_unexpected_error_is_one_line_with_a_hint(tmp_path):
    def run(**env):
        return subprocess.run([sys.executable, "-c", _UNFORESEEN], cwd=tmp_path, env=clean_env(
            GATEWAY_DATABASE_URL="postgresql://u@127.0.0.1:1/db", **env),
            capture_output=True, text=True, timeout=TIMEOUT)

    result = run()
    assert result.returncode == 1
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert plain == ["gateway: unexpected error: RuntimeError: something nobody foresaw "
                     "(rerun with GATEWAY_LOG_LEVEL=debug to see the traceback)"], result.stderr
    debug = run(GATEWAY_LOG_LEVEL="debug")  # the traceback, for whoever asked for it
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "something nobody foresaw" in debug.stderr


def test_ctrl_c_while_waiting_for_the_database(tmp_path):
    url = f"postgresql://u:PWctrlc@127.0.0.1:{free_tcp_port()}/db"
    process = subprocess.Popen([GATEWAY, "serve"], cwd=tmp_path, env=clean_env(
        GATEWAY_DATABASE_URL=url), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        first = process.stderr.readline()  # blocks until it is waiting (bounded below)
        assert '"database.unavailable"' in first, first
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 130
    plain = [line for line in (first + rest).splitlines() if not line.startswith("{")]
    assert plain == ["gateway: interrupted"]
    assert "Traceback" not in rest and "PWctrlc" not in first + rest
