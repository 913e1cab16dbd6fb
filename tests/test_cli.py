"""The ``gateway`` command as a real subprocess against a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from gateway.migrations import available

GATEWAY = str(Path(sys.executable).with_name("gateway"))
TIMEOUT = 60


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any GATEWAY_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


def gateway(*args: str, url: str | None, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    if url is not None:
        env["GATEWAY_DATABASE_URL"] = url
    return subprocess.run([GATEWAY, *args], cwd=cwd, env=clean_env(**env), capture_output=True,
                          text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def fetch(url: str, sql: str, *args):
    async def run():
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def run(database_url, tmp_path):
    """``run(*args)``: the CLI against this test's database, in an empty working dir."""
    return lambda *args, **env: gateway(*args, url=database_url, cwd=tmp_path, **env)


@pytest.fixture
def acme(run) -> dict:
    return json.loads(ok(run("accounts", "create", "--name", "acme", "--concurrent-max", "3")))


def test_accounts_create(acme, database_url):
    assert acme["name"] == "acme"
    assert acme["concurrent_max"] == 3
    assert acme["calls_per_minute"] == 60  # accounts.default_calls_per_minute
    assert acme["daily_calls_max"] is None and acme["daily_minutes_max"] is None
    uuid.UUID(acme["account_id"])
    key = acme["api_key"]
    assert key.startswith("gw_") and len(key) == 46

    rows = fetch(database_url, "SELECT k.*, a.name FROM api_keys k "
                               "JOIN accounts a ON a.id = k.account_id")
    assert len(rows) == 1
    assert bytes(rows[0]["key_hash"]) == hashlib.sha256(key.encode()).digest()
    assert str(rows[0]["account_id"]) == acme["account_id"] and rows[0]["name"] == "acme"
    assert rows[0]["revoked_at"] is None
    # Stored hashed: the key appears in no column.
    assert all(key not in str(value) for value in rows[0].values())
    assert key.startswith(rows[0]["prefix"]) and len(rows[0]["prefix"]) < len(key)


def test_accounts_create_defaults_come_from_config(run, tmp_path):
    config = tmp_path / "caps.toml"
    config.write_text("[accounts]\ndefault_concurrent_max = 7\ndefault_calls_per_minute = 45\n")
    # --config after the command (the documented `gateway serve --config FILE`) ...
    created = json.loads(ok(run("accounts", "create", "--name", "b", "--config", str(config))))
    assert (created["concurrent_max"], created["calls_per_minute"]) == (7, 45)
    # ... and before it; explicit options beat the configured defaults.
    explicit = json.loads(ok(run("--config", str(config), "accounts", "create", "--name", "c",
                                 "--concurrent-max", "0", "--calls-per-minute", "5")))
    assert (explicit["concurrent_max"], explicit["calls_per_minute"]) == (0, 5)


def test_accounts_list(acme, run):
    other = json.loads(ok(run("accounts", "create", "--name", "globex")))
    lines = ok(run("accounts", "list")).splitlines()
    listed = [json.loads(line) for line in lines]
    assert [a["name"] for a in listed] == ["acme", "globex"]  # oldest first
    assert listed[0] == {k: v for k, v in acme.items() if k != "api_key"}
    assert listed[1]["account_id"] == other["account_id"]
    assert all("api_key" not in a for a in listed)
    assert acme["api_key"] not in "\n".join(lines)


def test_accounts_limits(acme, run, database_url):
    account_id = acme["account_id"]
    changed = json.loads(ok(run("accounts", "limits", account_id, "--concurrent-max", "0",
                                "--daily-calls-max", "100")))
    assert changed == {"account_id": account_id, "name": "acme", "concurrent_max": 0,
                       "calls_per_minute": 60, "daily_calls_max": 100,
                       "daily_minutes_max": None}

    reset = json.loads(ok(run("accounts", "limits", account_id, "--daily-calls-max", "none")))
    assert reset == {**changed, "daily_calls_max": None}

    shown = json.loads(ok(run("accounts", "limits", account_id)))
    assert shown == reset

    rate = json.loads(ok(run("accounts", "limits", account_id, "--calls-per-minute", "12",
                             "--daily-minutes-max", "30")))
    assert rate == {**reset, "calls_per_minute": 12, "daily_minutes_max": 30}

    row = fetch(database_url, "SELECT * FROM accounts WHERE id = $1", uuid.UUID(account_id))[0]
    assert (row["concurrent_max"], row["calls_per_minute"], row["daily_calls_max"],
            row["daily_minutes_max"]) == (0, 12, None, 30)


@pytest.mark.parametrize("options", [(), ("--concurrent-max", "1")])
def test_accounts_limits_unknown_account(run, options):
    missing = str(uuid.uuid4())
    result = run("accounts", "limits", missing, *options)
    assert result.returncode == 1
    assert f"no account {missing}" in result.stderr
    assert result.stdout == ""


def test_accounts_limits_not_a_uuid(run):
    result = run("accounts", "limits", "nope")
    assert result.returncode == 2
    assert "account_id" in result.stderr


@pytest.mark.parametrize("args", [
    ("accounts", "create", "--name", "x", "--concurrent-max", "-1"),
    ("accounts", "limits", str(uuid.UUID(int=1)), "--daily-calls-max", "-5"),
])
def test_negative_or_bad_caps_are_usage_errors(run, args, database_url):
    result = run(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert fetch(database_url, "SELECT count(*) AS n FROM accounts")[0]["n"] == 0


def test_migrate(empty_database_url, tmp_path):
    first = gateway("migrate", url=empty_database_url, cwd=tmp_path)
    ok(first)
    events = [json.loads(line) for line in first.stderr.splitlines()]
    versions = [m.version for m in available()]
    assert [e["event"] for e in events] == ["migration.applied"] * len(versions)
    rows = fetch(empty_database_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == versions
    # Again: nothing to apply, still exit 0.
    second = gateway("migrate", url=empty_database_url, cwd=tmp_path)
    ok(second)
    assert "migration.applied" not in second.stderr
    # migrate creates no account.
    assert fetch(empty_database_url, "SELECT count(*) AS n FROM accounts")[0]["n"] == 0


def test_unknown_key_in_config_file(run, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[http]\nprot = 8080\n")
    result = run("--config", str(config), "migrate")
    assert result.returncode == 2
    assert "http.prot" in result.stderr
    assert "Traceback" not in result.stderr


def test_gateway_config_env_names_the_file(run, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[http]\nprot = 8080\n")
    result = run("migrate", GATEWAY_CONFIG=str(config))
    assert result.returncode == 2
    assert "http.prot" in result.stderr and str(config) in result.stderr


def test_unknown_environment_setting(run):
    result = run("migrate", GATEWAY_HTTP_PROT="9000")
    assert result.returncode == 2
    assert "GATEWAY_HTTP_PROT" in result.stderr


def test_missing_config_file(run, tmp_path):
    result = run("--config", str(tmp_path / "nope.toml"), "migrate")
    assert result.returncode == 2
    assert "nope.toml" in result.stderr and "Traceback" not in result.stderr


def test_config_toml_in_working_directory_is_used(run, tmp_path):
    (tmp_path / "config.toml").write_text("[accounts]\ndefault_calls_per_minute = 33\n")
    created = json.loads(ok(run("accounts", "create", "--name", "d")))
    assert created["calls_per_minute"] == 33


def test_config_option_after_the_command(run, tmp_path):
    # The documented form: `gateway serve --config FILE`.
    config = tmp_path / "bad.toml"
    config.write_text("[http]\nprot = 8080\n")
    result = run("serve", "--config", str(config))
    assert result.returncode == 2
    assert "http.prot" in result.stderr  # the file was read, not "unrecognized arguments"


@pytest.mark.parametrize("args, words", [
    (("accounts", "create", "--name", ""), "--name"),
    (("accounts", "create", "--name", "x" * 201), "--name"),
    (("accounts", "create", "--name", "x", "--concurrent-max", "99999999999"),
     "--concurrent-max"),
])
def test_values_the_database_would_reject_are_usage_errors(run, args, words, database_url):
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert words in result.stderr
    assert fetch(database_url, "SELECT count(*) AS n FROM accounts")[0]["n"] == 0
