"""The do-not-call list through the SDK (``client.dnc``, both clients) and the CLI
(``gateway dnc ...``), against the real server on an ephemeral port."""

from __future__ import annotations

import io
import json

import pytest
import trio
from conftest import API_KEY
from test_cli_client import run_cli

from gateway.client import AsyncClient, Client, NotFoundError, ValidationError

CSV = (b"name,phone_number\nAnn,+12125550001\nBob,(212) 555-0002\nCy,nope\n"
       b"Di,212.555.0001\n")


async def test_async_client_adds_uploads_lists_and_deletes(gateway):
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        assert await client.dnc.add(["+12125550003", "(212) 555-0004", "2125550003"]) == {
            "added": 2, "already_listed": 1}
        assert await client.dnc.add("+12125550005") == {"added": 1, "already_listed": 0}
        report = await client.dnc.upload(CSV)
        assert (report["added"], report["already_listed"], report["rows_rejected"]) == (2, 0, 2)
        assert report["rejected_counts"] == {"empty": 0, "invalid_number": 1, "duplicate": 1,
                                             "column_count": 0}
        assert [(r["row"], r["reason"]) for r in report["rejected"]] == [
            (3, "invalid_number"), (4, "duplicate")]
        page = await client.dnc.list()
        assert [(e["number"], e["source"]) for e in page["data"]] == [
            ("+12125550001", "upload"), ("+12125550002", "upload"), ("+12125550003", "api"),
            ("+12125550004", "api"), ("+12125550005", "api")]
        only = await client.dnc.list(number="(212) 555-0004")
        assert [e["number"] for e in only["data"]] == ["+12125550004"]
        assert await client.dnc.delete("+12125550004") is None
        assert await client.dnc.delete(page["data"][0]) is None  # an entry's dict
        with pytest.raises(NotFoundError):
            await client.dnc.delete("(212) 555-0004")
        with pytest.raises(ValidationError) as caught:
            await client.dnc.add(["+12125550006", "12"])
        assert caught.value.field == "numbers[1]"
        with pytest.raises(ValidationError) as caught:
            await client.dnc.upload(b"name\nAnn\n")
        assert caught.value.field == "file"
        assert [e["number"] async for e in client.dnc.iter_dnc()] == [
            "+12125550002", "+12125550003", "+12125550005"]


async def test_sync_client_walks_every_page_and_uploads_files_and_paths(gateway, tmp_path):
    path = tmp_path / "dnc.csv"
    path.write_bytes(b"phone_number\n" + b"".join(b"+1212555%04d\n" % i for i in range(150)))

    def run() -> tuple:
        with Client(gateway.base_url, API_KEY) as client:
            from_path = client.dnc.upload(path)
            with open(path, "rb") as f:
                from_file = client.dnc.upload(f)
            from_bytes = client.dnc.upload(io.BytesIO(b"phone_number\n+12125559999\n"))
            with pytest.raises(TypeError, match="binary mode"):
                client.dnc.upload(io.StringIO("phone_number\n"))
            with pytest.raises(ValueError, match="a number is required"):
                client.dnc.delete("")
            return (from_path["added"], from_file["already_listed"], from_bytes["added"],
                    len(list(client.dnc.iter_dnc())), client.dnc.list(page=1)["has_more"])

    assert await trio.to_thread.run_sync(run) == (150, 150, 1, 151, False)


@pytest.fixture
def cli(gateway, monkeypatch):
    """``await cli("add", ...)``: ``gateway dnc ...`` -> (exit code, stdout, stderr)."""
    monkeypatch.delenv("GATEWAY_API_KEY", raising=False)
    monkeypatch.delenv("GATEWAY_BASE_URL", raising=False)
    return lambda *argv, key=API_KEY: run_cli(gateway, "dnc", *argv, key=key)


async def test_cli_add_upload_list_delete(cli, tmp_path):
    code, out, err = await cli("add", "+12125550003", "(212) 555-0004", "+12125550003")
    assert (code, err) == (0, "") and json.loads(out) == {"added": 2, "already_listed": 1}
    path = tmp_path / "numbers.csv"
    path.write_bytes(CSV)
    code, out, err = await cli("upload", str(path))
    assert (code, err) == (0, "")
    assert (json.loads(out)["added"], json.loads(out)["rows_rejected"]) == (2, 2)

    code, out, err = await cli("list")
    assert (code, err) == (0, "")
    assert [json.loads(line)["number"] for line in out.splitlines()] == [
        "+12125550001", "+12125550002", "+12125550003", "+12125550004"]
    code, out, _ = await cli("list", "--number", "2125550002", "--table")
    header, *rows = out.splitlines()
    assert header.split() == ["NUMBER", "SOURCE", "CREATED_AT"]
    assert [row.split()[:2] for row in rows] == [["+12125550002", "upload"]]

    code, out, err = await cli("delete", "(212) 555-0004")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"number": "(212) 555-0004", "deleted": True}
    code, out, err = await cli("delete", "+12125550004")
    assert (code, out) == (1, "")
    assert err == "gateway: not_found: +12125550004 is not on the do-not-call list\n"
    code, out, err = await cli("add", "+12125550005", "bogus")
    assert (code, out) == (1, "") and err.startswith("gateway: validation_error: numbers[1]: ")
    code, _, err = await cli("upload", str(tmp_path / "missing.csv"))
    assert code == 2 and err.startswith("gateway: usage: cannot read ")
    code, out, _ = await cli("list", "--all")
    assert len(out.splitlines()) == 3


async def test_cli_list_pages(cli, gateway):
    async with AsyncClient(gateway.base_url, API_KEY) as client:
        await client.dnc.add([f"+1212555{i:04d}" for i in range(101)])
    code, out, err = await cli("list")
    assert code == 0 and len(out.splitlines()) == 100
    assert err == "gateway: note: page 0 of 101 numbers; next: --page 1 (or --all)\n"
    code, out, err = await cli("list", "--page", "1")
    assert (code, [json.loads(line)["number"] for line in out.splitlines()], err) == (
        0, ["+12125550100"], "")
    code, out, err = await cli("list", "--all", "--table")
    assert (code, len(out.splitlines()), err) == (0, 102, "")
