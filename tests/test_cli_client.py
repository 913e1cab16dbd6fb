"""``gateway campaigns ...`` against the real server on an ephemeral port.

The commands run through their argparse parser (``gateway.cli_client.main``) in a worker
thread, with stdout/stderr captured in strings; one test runs ``python -m
gateway.cli_client`` as a real process.
"""

from __future__ import annotations

import io
import json
import os
import sys
import uuid

import pytest
import trio
from conftest import API_KEY, contacts_csv
from engine_helpers import engine_settings, rule
from ports import free_tcp_port

from gateway.cli_client import main

NO_DIALING = {"accounts": {"default_calls_per_minute": 0}}
FAST_DIALING = {**engine_settings([rule("*", "answered", ring=0.05)]),
                "sse": {"tick_seconds": 0.05, "heartbeat_seconds": 0.5}}


async def run_cli(gateway, *argv: str, key: str | None = API_KEY) -> tuple[int, str, str]:
    """``gateway ARGV --base-url URL [--api-key KEY]`` through the client's parser, in a
    worker thread -> (exit code, stdout, stderr). Also used by test_cli_resources."""
    out, err = io.StringIO(), io.StringIO()
    options = ["--base-url", gateway.base_url] + (["--api-key", key] if key else [])
    code = await trio.to_thread.run_sync(
        lambda: main([*argv, *options], stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli(gateway, monkeypatch):
    """``await cli("list", ...)`` -> (exit code, stdout, stderr)."""
    monkeypatch.delenv("GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_BASE_URL", raising=False)

    async def run(*argv: str, key: str | None = API_KEY):
        return await run_cli(gateway, "campaigns", *argv, key=key)

    return run


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes(contacts_csv(150))
    return path


@pytest.fixture
def create(cli, csv_file, agent_id, number_id):
    async def make(*extra: str) -> dict:
        code, out, err = await cli("create", "--csv", str(csv_file), "--name", "Q4",
                                   "--agent-id", agent_id, "--phone-number-id", number_id,
                                   *extra)
        assert code == 0, err
        return json.loads(out)

    return make


async def test_create_show_and_list(cli, create):
    created = await create("--max-concurrent-calls", "3", "--retries-per-contact", "1",
                           "--retry-delay-seconds", "120")
    assert created["status"] == "draft" and created["max_concurrent_calls"] == 3
    assert created["import_report"]["rows_accepted"] == 150
    scheduled = await create("--scheduled-at", "2099-01-01T00:00:00Z")
    assert scheduled["status"] == "scheduled"

    code, out, err = await cli("show", created["id"])
    assert code == 0 and err == "" and json.loads(out)["id"] == created["id"]
    assert out.startswith("{\n  ")  # pretty JSON

    code, out, err = await cli("list")
    assert code == 0 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]  # JSON lines, newest first
    assert [r["id"] for r in rows] == [scheduled["id"], created["id"]]
    code, out, _ = await cli("list", "--status", "draft", "--table")
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "NAME"]
    assert len(lines) == 1 and lines[0].split()[:3] == [created["id"], "draft", "Q4"]


@pytest.mark.parametrize("settings_overrides", [NO_DIALING])
async def test_start_pause_resume_stop_delete(cli, create):
    campaign, draft = await create(), await create()
    statuses = []
    for verb in ("start", "pause", "resume", "stop"):
        code, out, err = await cli(verb, campaign["id"])
        assert code == 0, err
        statuses.append(json.loads(out)["status"])
    assert statuses == ["running", "paused", "running", "completed"]
    code, out, _ = await cli("delete", draft["id"])
    assert code == 0 and json.loads(out) == {"id": draft["id"], "deleted": True}
    code, _, err = await cli("show", draft["id"])
    assert code == 1 and err == "gateway: not_found: campaign not found\n"
    code, out, _ = await cli("contacts", campaign["id"], "--status", "skipped", "--all")
    assert code == 0 and len(out.splitlines()) == 150


async def test_contacts_pages_and_calls(cli, create):
    campaign = await create()
    code, out, err = await cli("contacts", campaign["id"])
    assert code == 0 and len(out.splitlines()) == 100
    assert "next: --page 1" in err  # a note, since more pages exist
    code, out, err = await cli("contacts", campaign["id"], "--page", "1")
    assert code == 0 and len(out.splitlines()) == 50 and err == ""
    code, out, _ = await cli("contacts", campaign["id"], "--all", "--status", "pending")
    contacts = [json.loads(line) for line in out.splitlines()]
    assert len(contacts) == 150 and contacts[0]["custom_fields"] == {"first_name": "name0"}
    code, out, _ = await cli("contacts", campaign["id"], "--all", "--table")
    assert len(out.splitlines()) == 151 and out.split()[:3] == ["ID", "PHONE_NUMBER", "STATUS"]
    code, out, err = await cli("calls", campaign["id"])
    assert (code, out, err) == (0, "", "")


async def test_errors_are_one_line_on_stderr(cli, create, tmp_path):
    campaign = await create()
    code, out, err = await cli("show", str(uuid.uuid4()))
    assert (code, out, err) == (1, "", "gateway: not_found: campaign not found\n")
    code, _, err = await cli("pause", campaign["id"])
    assert (code, err) == (1, "gateway: conflict: cannot pause a campaign that is draft\n")
    code, _, err = await cli("create", "--csv", str(tmp_path / "nope.csv"), "--name", "n",
                             "--agent-id", str(uuid.uuid4()), "--phone-number-id", "x")
    assert code == 2 and err.startswith("gateway: usage: cannot read ")
    code, _, err = await cli("create", "--csv", str(tmp_path / "contacts.csv"), "--name", "n",
                             "--agent-id", str(uuid.uuid4()),
                             "--phone-number-id", str(uuid.uuid4()))
    assert code == 1 and err.startswith("gateway: validation_error: agent_id: ")
    code, _, err = await cli("list", key="gw_" + "x" * 43)
    assert (code, err) == (1, "gateway: unauthorized: invalid API key\n")
    code, _, err = await cli("list", key=None)
    assert code == 2
    assert err == "gateway: usage: no API key: pass --api-key or set GATEWAY_API_KEY\n"


async def test_connection_refused_exits_1(monkeypatch):
    monkeypatch.setenv("GATEWAY_API_KEY", API_KEY)
    port = free_tcp_port()  # free a moment ago: nothing listens
    monkeypatch.setenv("GATEWAY_BASE_URL", f"http://127.0.0.1:{port}")
    err = io.StringIO()
    code = await trio.to_thread.run_sync(lambda: main(["campaigns", "list"], stderr=err))
    assert code == 1 and err.getvalue().startswith("gateway: connection_error: cannot reach ")


@pytest.mark.parametrize("settings_overrides", [FAST_DIALING])
async def test_watch_follows_the_campaign_to_the_end(cli, create):
    campaign = await create("--max-concurrent-calls", "10")
    code, _, err = await cli("start", campaign["id"])
    assert code == 0, err
    code, out, err = await cli("watch", campaign["id"])
    assert code == 0, err
    final = json.loads(out)
    assert final["status"] == "completed" and final["completed"] == 150
    # Not a terminal: one plain line per change of the counts, no bar.
    lines = err.splitlines()
    assert lines[-1] == ("completed 150/150 failed=0 skipped=0 pending=0 retry_pending=0 "
                         "in_flight=0")
    assert len(lines) == len(set(lines)) and "━" not in err


@pytest.mark.parametrize("settings_overrides", [FAST_DIALING])
async def test_watch_draws_a_progress_bar_on_a_terminal(cli, create, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat the captured stderr as a terminal
    monkeypatch.setenv("COLUMNS", "160")
    campaign = await create()
    await cli("start", campaign["id"])
    code, out, err = await cli("watch", campaign["id"])
    assert code == 0, err
    assert json.loads(out)["completed"] == 150
    assert "150/150" in err and "100%" in err and "━" in err
    assert "completed" in err and "in_flight=0" in err


async def test_the_module_runs_as_a_process_with_the_environment(gateway, create):
    campaign = await create()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_BASE_URL=gateway.base_url, GATEWAY_API_KEY=API_KEY)
    done = await trio.run_process(
        [sys.executable, "-m", "gateway.cli_client", "campaigns", "show", campaign["id"]],
        env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == campaign["id"]
    del env["GATEWAY_API_KEY"]
    done = await trio.run_process(
        [sys.executable, "-m", "gateway.cli_client", "campaigns", "list"],
        env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 2 and b"no API key" in done.stderr
    done = await trio.run_process(
        [sys.executable, "-m", "gateway.cli_client", "campaigns", "frobnicate", "x"],
        env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 2 and b"invalid choice" in done.stderr
