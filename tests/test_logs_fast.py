"""Log lines are buffered and cheap, and still: one JSON object per line with ``event``,
``level`` and a UTC ``timestamp``; every line out by the end of the process however it
ends; warnings and errors out at once; the standard library's lines in the same shape; no
secret in any of them.

Each test runs a small Python process of its own (logging is configured once per
process) and reads its standard error through a pipe.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
import trio
from gateway_process import clean_env

from gateway.keys import generate_key

# Nothing is written for its age in these children: what comes out, comes out because of
# the rule under test (a level, the exit), not because the interval went by.
HOLD = """
import sys
import gateway.logs as logs
logs.FLUSH_SECONDS = 3600
logs.configure_logging("info")
log = logs.get_logger("test")
"""


def _run(script: str, tmp_path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=timeout)


def _records(stderr: str) -> list[dict]:
    """The JSON lines of a child's stderr (a traceback's lines are not)."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _assert_shape(record: dict) -> None:
    assert isinstance(record["event"], str) and record["level"] in (
        "debug", "info", "warning", "error", "critical"), record
    stamp = record["timestamp"]
    assert stamp.endswith("Z"), record
    parsed = datetime.fromisoformat(stamp[:-1] + "+00:00")
    assert parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60


def test_lines_are_json_objects_with_their_fields(tmp_path):
    result = _run(HOLD + """
import uuid
campaign = uuid.UUID("0b0e6d8e-57f4-4a8f-9f52-2d3c4c1a0f11")
log.debug("call.dialed", to="+12125550100")               # below the level: not written
log.info("call.ended", campaign_id=str(campaign), attempt=1, connected=True,
         duration_seconds=1.5, outcome=None, raw=campaign, by_number={1: "one"},
         text='quotes " and \\\\ and\\nnew line, and non-ASCII: é')
log.bind(call_id="c-1", sip_call_id="s-1").warning("sip.invite_timeout", leg="agent")
try:
    raise ValueError("the reason")
except ValueError:
    log.exception("recorder.write_failed", attempt_id="a-1")
log.info("big", count=2**70)                              # past orjson's integers
""", tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON, nothing else
    assert [r["event"] for r in records] == ["call.ended", "sip.invite_timeout",
                                             "recorder.write_failed", "big"]
    for record in records:
        assert isinstance(record, dict)
        _assert_shape(record)
    ended, timeout, failed, big = records
    assert ended["level"] == "info"
    assert {k: ended[k] for k in ("campaign_id", "attempt", "connected", "duration_seconds",
                                  "outcome")} == {
        "campaign_id": "0b0e6d8e-57f4-4a8f-9f52-2d3c4c1a0f11", "attempt": 1,
        "connected": True, "duration_seconds": 1.5, "outcome": None}
    assert ended["raw"] == "0b0e6d8e-57f4-4a8f-9f52-2d3c4c1a0f11"
    assert ended["by_number"] == {"1": "one"}
    assert ended["text"] == 'quotes " and \\ and\nnew line, and non-ASCII: é'
    assert timeout["level"] == "warning"
    assert (timeout["call_id"], timeout["sip_call_id"], timeout["leg"]) == ("c-1", "s-1",
                                                                           "agent")
    assert failed["level"] == "error" and failed["attempt_id"] == "a-1"
    assert "ValueError: the reason" in failed["exception"]
    assert big["count"] == 2**70


@pytest.mark.parametrize("ending", ["return", "sys.exit", "raise", "trio crash"])
def test_every_buffered_line_is_written_when_the_process_ends(tmp_path, ending):
    endings = {
        "return": "",
        "sys.exit": "sys.exit(3)",
        "raise": "raise RuntimeError('unhandled')",
        # An actor's crash cancels the flusher beside it.
        "trio crash": textwrap.dedent("""
            import trio
            async def main():
                async with trio.open_nursery() as nursery:
                    await nursery.start(logs.log_flusher)
                    log.info("line", n=300)
                    raise RuntimeError("unhandled")
            trio.run(main)
        """),
    }
    result = _run(HOLD + """
for n in range(300):
    log.info("line", n=n)
print(len(logs._output._lines), flush=True)   # held in the buffer, not yet written
""" + endings[ending], tmp_path)
    assert int(result.stdout.split()[0]) == 300  # the lines were all held until now
    expected_code = {"return": 0, "sys.exit": 3}.get(ending, 1)
    assert result.returncode == expected_code, result.stderr
    records = _records(result.stderr)
    wanted = 301 if ending == "trio crash" else 300
    assert [r["n"] for r in records] == list(range(wanted))
    if ending in ("raise", "trio crash"):
        assert "RuntimeError: unhandled" in result.stderr


class _Child:
    """A child process that logs what its stdin says, one command a line, and answers
    ``done`` on stdout after each; its stderr read through a pipe."""

    SCRIPT = HOLD + """
import logging
for command in iter(sys.stdin.readline, ""):
    kind, _, text = command.strip().partition(" ")
    if kind == "library":
        logging.getLogger("asyncpg.pool").error(text)
    else:
        getattr(log, kind)(text)
    print("done", flush=True)
"""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._out = self._err = b""

    @classmethod
    async def start(cls, tmp_path, script: str = SCRIPT) -> _Child:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-c", script], cwd=tmp_path, env=clean_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return cls(process)

    async def command(self, line: str) -> None:
        await self.process.stdin.send_all(line.encode() + b"\n")
        with trio.fail_after(10):
            while b"done\n" not in self._out:
                self._out += await self.process.stdout.receive_some(4096)
        self._out = self._out.split(b"done\n", 1)[1]

    async def stderr_lines(self, count: int, seconds: float) -> list[dict]:
        """The next ``count`` lines written to stderr within ``seconds`` (fewer if they
        do not come in time)."""
        with trio.move_on_after(seconds):
            while self._err.count(b"\n") < count:
                chunk = await self.process.stderr.receive_some(65536)
                if not chunk:
                    break
                self._err += chunk
        lines = self._err.split(b"\n")
        taken, rest = lines[:min(count, len(lines) - 1)], lines[min(count, len(lines) - 1):]
        self._err = b"\n".join(rest)
        return [json.loads(line) for line in taken]

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            await self.process.stdin.aclose()
            with trio.move_on_after(10):
                await self.process.wait()
            if self.process.poll() is None:
                self.process.kill()
                await self.process.wait()


@pytest.mark.parametrize("urgent", ["error", "warning", "library"])
async def test_warnings_and_errors_are_written_at_once_with_the_lines_before(tmp_path,
                                                                            urgent):
    child = await _Child.start(tmp_path)
    try:
        await child.command("info held")
        # An info line waits for the interval, the buffer filling up, or the exit.
        assert await child.stderr_lines(1, seconds=0.5) == []
        await child.command(f"{urgent} urgent")
        # Well before any interval: at once, in order, the held line first.
        held, now = await child.stderr_lines(2, seconds=10)
        assert (held["event"], held["level"]) == ("held", "info")
        assert now["event"] == "urgent"
        assert now["level"] == ("warning" if urgent == "warning" else "error")
        if urgent == "library":
            assert now["logger"] == "asyncpg.pool"
    finally:
        await child.close()


async def test_the_flusher_writes_info_lines_within_its_interval(tmp_path):
    script = """
import sys, trio
import gateway.logs as logs
logs.configure_logging("info")
log = logs.get_logger("test")

async def main():
    async with trio.open_nursery() as nursery:
        await nursery.start(logs.log_flusher)
        log.info("quiet", n=1)
        await trio.to_thread.run_sync(sys.stdin.read)   # until the test closes it
        nursery.cancel_scope.cancel()
trio.run(main)
"""
    child = await _Child.start(tmp_path, script)
    try:
        started = trio.current_time()
        [line] = await child.stderr_lines(1, seconds=10)
        # A single line, no other after it: written by the actor, not by the exit.
        assert child.process.poll() is None
        assert line["event"] == "quiet"
        assert trio.current_time() - started < 10
    finally:
        await child.close()


async def test_a_signal_shutdown_writes_every_line(tmp_path):
    """As ``gateway serve`` stops on SIGTERM: the signal ends the trio run, then the
    process exits, and nothing logged before is lost."""
    script = HOLD + """
import signal, trio

async def main():
    async with trio.open_nursery() as nursery:
        await nursery.start(logs.log_flusher)
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            for n in range(300):
                log.info("line", n=n)
            print("ready", flush=True)
            async for signum in signals:
                log.info("gateway.signal", signal=signal.Signals(signum).name)
                break
        nursery.cancel_scope.cancel()
    log.info("gateway.stopped")
trio.run(main)
"""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", script], cwd=tmp_path, env=clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with trio.fail_after(20):
            received = b""
            while b"ready" not in received:
                received += await process.stdout.receive_some(4096)
            process.send_signal(signal.SIGTERM)
            err = b""
            while chunk := await process.stderr.receive_some(65536):
                err += chunk
            assert await process.wait() == 0
    finally:
        if process.poll() is None:
            process.kill()
    records = [json.loads(line) for line in err.decode().splitlines()]
    assert [r.get("n") for r in records[:300]] == list(range(300))
    assert [r["event"] for r in records[300:]] == ["gateway.signal", "gateway.stopped"]


def test_library_lines_have_the_same_shape(tmp_path):
    result = _run(HOLD + """
import logging
log.warning("own.line", key="value")
logging.getLogger("hypercorn.error").warning("bad request %s", "line")
logging.getLogger("asyncpg.pool").info("below the libraries' level: not written")
try:
    raise OSError("connection reset")
except OSError:
    logging.getLogger("asyncpg.pool").exception("connection lost")
""", tmp_path)
    assert result.returncode == 0, result.stderr
    own, library, failed = [json.loads(line) for line in result.stderr.splitlines()]
    for record in (own, library, failed):
        _assert_shape(record)
    assert set(own) == {"event", "level", "timestamp", "key"}
    assert set(library) == {"event", "level", "timestamp", "logger"}
    assert library == {**library, "event": "bad request line", "level": "warning",
                       "logger": "hypercorn.error"}
    assert failed["level"] == "error" and failed["logger"] == "asyncpg.pool"
    assert "OSError: connection reset" in failed["exception"]
    assert len(own["timestamp"]) == len(library["timestamp"])  # the same format


def test_no_secret_reaches_a_line(tmp_path):
    key = generate_key()
    url = "postgresql://gateway:Pw0rdUser@db.internal:5432/gw?sslpassword=Pw0rdQuery"
    result = _run(HOLD + f"""
from gateway.keys import display_prefix
url = {url!r}
key = {key!r}
log.warning("database.unavailable", url=logs.redact_url(url), error="refused")
log.info("account.bootstrapped", api_key_prefix=display_prefix(key))
log.error("startup.failed", dsn=logs.redact_url("host=db password='Pw0rd Kw' user=gw"))
""", tmp_path)
    assert result.returncode == 0, result.stderr
    unavailable, bootstrapped, failed = _records(result.stderr)
    for secret in ("Pw0rdUser", "Pw0rdQuery", "Pw0rd Kw", "Pw0rd", key):
        assert secret not in result.stderr
    assert unavailable["url"] == "postgresql://gateway:***@db.internal:5432/gw?sslpassword=***"
    assert key.startswith(bootstrapped["api_key_prefix"]) and \
        len(bootstrapped["api_key_prefix"]) < len(key) // 2
    assert failed["dsn"] == "host=db password=*** user=gw"


def test_a_new_configuration_reaches_loggers_made_before_it(tmp_path):
    """Module loggers are made at import, before logging is configured, and take the
    configured logger's methods (:func:`configure_logging` with ``cache``); configured
    again, they follow."""
    result = _run("""
import gateway.logs as logs
log = logs.get_logger("early")
logs.configure_logging("info")
log.info("at info", n=1)
log.debug("filtered")
logs.configure_logging("warning")
log.info("filtered too")
log.warning("at warning", n=2)
logs.configure_logging("debug", cache=False)
log.debug("at debug", n=3)
""", tmp_path)
    assert result.returncode == 0, result.stderr
    assert [(r["event"], r["n"]) for r in _records(result.stderr)] == [
        ("at info", 1), ("at warning", 2), ("at debug", 3)]
