"""``gateway demo --exit`` as a real subprocess against this test's own fresh database;
and, against the in-process server, how a later run reuses what an earlier one made."""

from __future__ import annotations

import re
import subprocess

import trio
from conftest import API_KEY
from gateway_process import GATEWAY, clean_env
from test_cli import fetch

from gateway import cli_demo
from gateway.client import Client

TIMEOUT_SECONDS = 90


def test_demo_runs_a_campaign_to_the_end_and_exits(database_url, tmp_path):
    result = subprocess.run(
        [GATEWAY, "demo", "--exit", "--contacts", "20"], cwd=tmp_path,
        env=clean_env(GATEWAY_DATABASE_URL=database_url, GATEWAY_HTTP_PORT="0"),
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr.lower()
    out = result.stdout

    # First start on an empty account table: the key is written to <data_dir>/api_key.
    key_file = tmp_path / "gateway-data" / "api_key"
    assert key_file.read_text().strip() in out
    summary = re.search(r"^Campaign completed in \d+ s: 20 contacts \(completed (\d+), "
                        r"failed (\d+), skipped 0\); (\d+) calls \(answered (\d+)", out, re.M)
    assert summary, out
    completed, failed, calls, answered = map(int, summary.groups())
    assert completed + failed == 20 and answered == completed
    assert calls > 20  # some calls were retried
    base_url = re.search(r"^API docs:  (http://127\.0\.0\.1:\d+)/docs$", out, re.M).group(1)
    assert f"export GATEWAY_BASE_URL={base_url}" in out
    assert f"API key:   {key_file}" in out and f"$(cat {key_file})" in out
    assert "gateway campaigns list" in out and "gateway agents list" in out
    assert "keeps serving" not in out
    # The progress (stderr is not a terminal: one plain line per change) ends complete.
    assert result.stderr.splitlines()[-1].startswith(f"completed 20/20 failed={failed} ")

    [campaign] = fetch(database_url, "SELECT id, status, max_concurrent_calls, "
                                     "retries_per_contact FROM campaigns")
    assert (campaign["status"], campaign["max_concurrent_calls"],
            campaign["retries_per_contact"]) == ("completed", 10, 1)
    statuses = fetch(database_url, "SELECT status, count(*) FROM contacts "
                                   "WHERE campaign_id = $1 GROUP BY status", campaign["id"])
    assert {row["status"]: row["count"] for row in statuses} == {
        status: count for status, count in (("completed", completed), ("failed", failed))
        if count}
    [agent] = fetch(database_url, "SELECT name, greeting FROM agents")
    assert agent["name"] == "Demo agent" and "{{first_name}}" in agent["greeting"]
    [number] = fetch(database_url, "SELECT number FROM phone_numbers")
    assert number["number"] == "+12025550100"
    [attempts] = fetch(database_url, "SELECT count(*) FROM attempts")
    assert attempts["count"] == calls


async def test_a_later_demo_reuses_its_agent_and_caller_id(gateway, capsys):
    def twice() -> tuple[list[dict], list[dict]]:
        with Client(gateway.base_url, API_KEY) as client:
            agents = [cli_demo._agent(client), cli_demo._agent(client)]
            numbers = [cli_demo._caller_id(client)]
            # Disabled since (by hand): the demo turns it back on to dial from it.
            client.phone_numbers.update(numbers[0], outbound_enabled=False)
            numbers.append(cli_demo._caller_id(client))
            return agents, numbers

    with trio.fail_after(30):
        agents, numbers = await trio.to_thread.run_sync(twice)
    assert agents[0]["id"] == agents[1]["id"] and agents[0]["variables"] == ["first_name"]
    assert numbers[0]["id"] == numbers[1]["id"] and numbers[1]["outbound_enabled"] is True
    assert numbers[1]["number"] == cli_demo.CALLER_ID
    assert "from an earlier demo" in capsys.readouterr().out
