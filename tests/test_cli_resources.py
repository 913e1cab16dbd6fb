"""``gateway agents ...`` and ``gateway numbers ...`` against the real server on an
ephemeral port, through the client's parser (``run_cli`` of test_cli_client); one test runs
``python -m gateway`` as a real process with the connection in the environment."""

from __future__ import annotations

import json
import sys
import uuid

import pytest
import trio
from conftest import API_KEY
from gateway_process import clean_env
from test_cli_client import run_cli

from gateway.client import AsyncClient, Client


@pytest.fixture
def cli(gateway, monkeypatch):
    """``await cli("agents", "list", ...)`` -> (exit code, stdout, stderr)."""
    monkeypatch.delenv("GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_BASE_URL", raising=False)
    return lambda *argv, key=API_KEY: run_cli(gateway, *argv, key=key)


async def ok(cli, *argv: str) -> dict:
    code, out, err = await cli(*argv)
    assert (code, err) == (0, ""), err
    assert out.startswith("{\n  ")  # one object: pretty JSON
    return json.loads(out)


async def test_agents_create_show_update_list_delete(cli):
    created = await ok(cli, "agents", "create", "--name", "Ava", "--greeting",
                       "Hi {{first_name}}, about {{ plan }}", "--sip-uri",
                       "sip:ava@10.0.0.5:5060", "--max-concurrent-calls", "3")
    assert (created["name"], created["status"]) == ("Ava", "active")
    assert created["variables"] == ["first_name", "plan"]
    assert (created["sip_uri"], created["max_concurrent_calls"]) == ("sip:ava@10.0.0.5:5060",
                                                                     3)
    assert "media_address" not in created
    assert await ok(cli, "agents", "show", created["id"]) == created

    # PATCH: only the fields given change; 'none' clears a nullable one.
    updated = await ok(cli, "agents", "update", created["id"], "--status", "inactive",
                       "--sip-uri", "none")
    assert (updated["status"], updated["sip_uri"]) == ("inactive", None)
    assert (updated["name"], updated["greeting"], updated["max_concurrent_calls"]) == (
        "Ava", created["greeting"], 3)
    raised = await ok(cli, "agents", "update", created["id"], "--max-concurrent-calls", "40")
    assert (raised["max_concurrent_calls"], raised["status"]) == (40, "inactive")
    renamed = await ok(cli, "agents", "update", created["id"], "--name", "Ben",
                       "--max-concurrent-calls", "none")
    assert (renamed["name"], renamed["status"], renamed["max_concurrent_calls"]) == (
        "Ben", "inactive", None)

    other = await ok(cli, "agents", "create", "--name", "Cleo")
    assert (other["greeting"], other["variables"], other["sip_uri"]) == ("", [], None)
    assert other["max_concurrent_calls"] is None
    code, out, err = await cli("agents", "list")
    assert (code, err) == (0, "")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [created["id"],
                                                                      other["id"]]
    code, out, _ = await cli("agents", "list", "--table")
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STATUS", "NAME", "VARIABLES", "SIP_URI", "CREATED_AT"]
    assert rows[0].split()[:5] == [created["id"], "inactive", "Ben", "first_name,plan", "-"]
    assert rows[1].split()[:5] == [other["id"], "active", "Cleo", "-", "-"]

    deleted = await ok(cli, "agents", "delete", created["id"])
    assert deleted == {"id": created["id"], "deleted": True}
    code, out, err = await cli("agents", "show", created["id"])
    assert (code, out, err) == (1, "", "gateway: not_found: agent not found\n")
    code, out, _ = await cli("agents", "list", "--all")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [other["id"]]


async def test_numbers_create_show_update_list_delete(cli):
    created = await ok(cli, "numbers", "create", "--number", "+1 415 555 0100",
                       "--label", "main line")
    assert (created["number"], created["label"], created["outbound_enabled"]) == (
        "+14155550100", "main line", True)
    assert await ok(cli, "numbers", "show", created["id"]) == created
    code, _, err = await cli("numbers", "create", "--number", "+14155550100")
    assert (code, err) == (1, "gateway: conflict: number: +14155550100 is already in your "
                              "account\n")

    updated = await ok(cli, "numbers", "update", created["id"], "--no-outbound-enabled")
    assert (updated["outbound_enabled"], updated["label"]) == (False, "main line")
    relabelled = await ok(cli, "numbers", "update", created["id"], "--label", "",
                          "--outbound-enabled")
    assert (relabelled["outbound_enabled"], relabelled["label"]) == (True, "")

    disabled = await ok(cli, "numbers", "create", "--number", "+12025550143",
                        "--no-outbound-enabled")
    assert (disabled["outbound_enabled"], disabled["label"]) == (False, "")
    code, out, _ = await cli("numbers", "list", "--table")
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "NUMBER", "OUTBOUND_ENABLED", "LABEL", "CREATED_AT"]
    assert [row.split()[:4] for row in rows] == [
        [created["id"], "+14155550100", "true", "-"],
        [disabled["id"], "+12025550143", "false", "-"]]

    assert await ok(cli, "numbers", "delete", created["id"]) == {"id": created["id"],
                                                                "deleted": True}
    code, out, err = await cli("numbers", "show", created["id"])
    assert (code, out, err) == (1, "", "gateway: not_found: phone number not found\n")
    # Deleted, the number may be added again.
    again = await ok(cli, "numbers", "create", "--number", "+14155550100")
    code, out, _ = await cli("numbers", "list", "--all")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [disabled["id"],
                                                                      again["id"]]


async def test_errors_are_one_line_and_usage_errors_exit_2(cli):
    code, out, err = await cli("agents", "create", "--name", "Ava", "--sip-uri", "http://x")
    assert (code, out) == (1, "")
    assert err.startswith("gateway: validation_error: sip_uri: ") and err.count("\n") == 1
    code, _, err = await cli("agents", "create", "--name", "Ava", "--greeting", "Hi {{")
    assert code == 1 and err.startswith("gateway: validation_error: greeting: ")
    code, _, err = await cli("numbers", "create", "--number", "12")
    assert code == 1 and err.startswith("gateway: validation_error: number: ")
    for count in ("0", "10001"):  # the server's bounds, named by the server
        code, _, err = await cli("agents", "create", "--name", "Ava",
                                 "--max-concurrent-calls", count)
        assert code == 1 and err.startswith("gateway: validation_error: max_concurrent_calls: ")
    code, _, err = await cli("agents", "update", str(uuid.uuid4()), "--name", "x")
    assert (code, err) == (1, "gateway: not_found: agent not found\n")
    code, _, err = await cli("numbers", "delete", str(uuid.uuid4()))
    assert (code, err) == (1, "gateway: not_found: phone number not found\n")

    code, out, err = await cli("agents", "update", str(uuid.uuid4()))
    assert (code, out) == (2, "")
    assert err == ("gateway: usage: nothing to update: give at least one of --name, "
                   "--status, --greeting, --sip-uri, --max-concurrent-calls\n")
    code, _, err = await cli("numbers", "update", str(uuid.uuid4()))
    assert code == 2 and "--outbound-enabled, --label" in err
    code, _, err = await cli("agents", "list", key=None)
    assert (code, err) == (2, "gateway: usage: no API key: pass --api-key or set "
                              "GATEWAY_API_KEY\n")
    code, _, err = await cli("numbers", "list", key="gw_" + "x" * 43)
    assert (code, err) == (1, "gateway: unauthorized: invalid API key\n")


async def test_pages_and_the_sdk_walkers(cli, gateway):
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        async with trio.open_nursery() as nursery:
            for i in range(101):
                nursery.start_soon(client.agents.create, f"agent {i:03d}")
        await client.phone_numbers.create("+14155550100")
        assert len([a async for a in client.agents.iter_agents()]) == 101
        numbers = [n["number"] async for n in client.phone_numbers.iter_phone_numbers()]
        assert numbers == ["+14155550100"]

    def walk() -> tuple[int, int]:
        with Client(gateway.base_url, API_KEY) as sync_client:
            return (len(list(sync_client.agents.iter_agents())),
                    len(list(sync_client.phone_numbers.iter_phone_numbers())))

    assert await trio.to_thread.run_sync(walk) == (101, 1)
    code, out, err = await cli("agents", "list")
    assert code == 0 and len(out.splitlines()) == 100
    assert err == "gateway: note: page 0 of 101 agents; next: --page 1 (or --all)\n"
    code, out, err = await cli("agents", "list", "--page", "1")
    assert (code, len(out.splitlines()), err) == (0, 1, "")
    code, out, err = await cli("agents", "list", "--all", "--table")
    assert (code, len(out.splitlines()), err) == (0, 102, "")
    names = {line.split()[3] for line in out.splitlines()[1:]}  # NAME "agent 007"
    assert names == {f"{i:03d}" for i in range(101)}


async def test_the_gateway_command_runs_them_with_the_environment(gateway, tmp_path):
    env = clean_env(GATEWAY_BASE_URL=gateway.base_url, GATEWAY_API_KEY=API_KEY)

    async def gateway_cmd(*argv: str) -> trio.Process:
        with trio.fail_after(30):
            return await trio.run_process([sys.executable, "-m", "gateway", *argv], env=env,
                                          cwd=tmp_path, capture_stdout=True,
                                          capture_stderr=True, check=False)

    done = await gateway_cmd("numbers", "create", "--number", "+14155550100")
    assert done.returncode == 0, done.stderr
    number = json.loads(done.stdout)
    done = await gateway_cmd("numbers", "list")
    assert done.returncode == 0 and json.loads(done.stdout) == number
    done = await gateway_cmd("agents", "create")  # --name is required: argparse says so
    assert done.returncode == 2 and b"--name" in done.stderr and done.stdout == b""
    done = await gateway_cmd("agents", "create", "--name", "Ava", "--status", "asleep")
    assert done.returncode == 2 and b"invalid choice: 'asleep'" in done.stderr
    done = await gateway_cmd("agents", "update", str(uuid.uuid4()),
                             "--max-concurrent-calls", "many")
    assert done.returncode == 2 and done.stdout == b""
    assert b"--max-concurrent-calls" in done.stderr and b"'many'" in done.stderr
