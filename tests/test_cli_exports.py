"""``gateway campaigns export`` against the real server: the bytes written are the HTTP
export's, to stdout (text in the parser's tests, binary from a real process) or to
``--output``; the filters; usage and API errors."""

from __future__ import annotations

import sys

import pytest
import trio
from conftest import API_KEY, contacts_csv
from engine_helpers import engine_settings, rule, start, wait_status
from gateway_process import clean_env
from test_cli_client import run_cli


@pytest.fixture
def settings_overrides():
    return engine_settings([rule("*1", "busy"), rule("*", "answered", talk=0.01)])


@pytest.fixture
def cli(gateway, monkeypatch):
    """``await cli("export", ID, ...)`` -> (exit code, stdout, stderr)."""
    monkeypatch.delenv("GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_BASE_URL", raising=False)
    return lambda *argv: run_cli(gateway, "campaigns", *argv)


@pytest.fixture
async def campaign(api, create_campaign) -> str:
    """A completed campaign of 12 contacts (two busy, dialed twice each)."""
    created = await create_campaign(contacts_csv(12), retries_per_contact=1,
                                    retry_delay_seconds=0)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    await start(api, campaign_id)
    with trio.fail_after(30):
        assert (await wait_status(api, campaign_id, "completed", "failed"))["status"] == \
            "completed"
    return campaign_id


async def body(api, campaign_id: str, name: str, **params) -> bytes:
    response = await api.get(f"/api/v1/campaigns/{campaign_id}/{name}", params=params)
    assert response.status_code == 200, response.text
    return response.content


async def test_export_writes_the_http_exports_bytes(cli, api, campaign, tmp_path):
    code, out, err = await cli("export", campaign)
    assert (code, err) == (0, "")
    assert out.encode() == await body(api, campaign, "contacts.csv")
    assert out.startswith("id,row_number,phone_number,custom_fields.first_name,status,")

    code, out, err = await cli("export", campaign, "--what", "calls", "--format", "jsonl",
                               "--outcome", "busy")
    assert (code, err) == (0, "")
    assert out.encode() == await body(api, campaign, "calls.jsonl", outcome="busy")
    assert len(out.splitlines()) == 4  # contacts 1 and 11, dialed twice each

    path = tmp_path / "failed.jsonl"
    code, out, err = await cli("export", campaign, "--format", "jsonl", "--status", "failed",
                               "--output", str(path))
    assert (code, out, err) == (0, "", "")
    assert path.read_bytes() == await body(api, campaign, "contacts.jsonl", status="failed")
    code, out, _ = await cli("export", campaign, "--what", "calls", "-o", "-")
    assert out.encode() == await body(api, campaign, "calls.csv")


async def test_export_errors(cli, campaign, tmp_path):
    code, out, err = await cli("export", campaign, "--what", "calls", "--status", "failed")
    assert (code, out) == (2, "")
    assert err == ("gateway: usage: --status filters contacts; with --what calls, use "
                   "--outcome\n")
    code, _, err = await cli("export", campaign, "--outcome", "busy")
    assert (code, err) == (2, "gateway: usage: --outcome filters calls; add --what calls\n")
    path = tmp_path / "none.csv"
    code, out, err = await cli("export", "01a23aa3-d1bb-7192-ab2f-0004b5d41448", "-o",
                               str(path))
    assert (code, out, err) == (1, "", "gateway: not_found: campaign not found\n")
    assert not path.exists()
    code, _, err = await cli("export", campaign, "-o", str(tmp_path / "no" / "dir.csv"))
    assert code == 2 and err.startswith("gateway: usage: cannot write ")


async def test_export_to_a_real_stdout_is_binary(gateway, api, campaign, tmp_path):
    env = clean_env(GATEWAY_BASE_URL=gateway.base_url, GATEWAY_API_KEY=API_KEY)
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-m", "gateway", "campaigns", "export", campaign, "--what",
             "calls"], env=env, cwd=tmp_path, capture_stdout=True, capture_stderr=True,
            check=False)
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout == await body(api, campaign, "calls.csv")  # CRLF kept as sent
