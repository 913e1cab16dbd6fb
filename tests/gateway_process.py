"""``gateway serve`` as a real subprocess, for the tests that need one (signals, restarts,
the embedded default)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

GATEWAY = str(Path(sys.executable).with_name("gateway"))
GRACE_SECONDS = 5  # what the tests give GATEWAY_HTTP_SHUTDOWN_GRACE_SECONDS


def have_pg_binaries() -> bool:
    from gateway.embedded_pg import EmbeddedPostgresError, _find_bindir

    try:
        _find_bindir()
    except EmbeddedPostgresError:
        return False
    return True


# For tests of the embedded cluster: skipped where PostgreSQL's server binaries are missing.
needs_pg_binaries = pytest.mark.skipif(not have_pg_binaries(),
                                       reason="no PostgreSQL server binaries on this machine")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any GATEWAY_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


class GatewayProcess:
    """``gateway serve`` as a real subprocess; stdout and stderr go to files."""

    def __init__(self, workdir: Path, env: dict[str, str], name: str) -> None:
        self.workdir, self.env = workdir, env
        self.port = int(env["GATEWAY_HTTP_PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.out_path = workdir / f"{name}.stdout"
        self.err_path = workdir / f"{name}.stderr"
        self.proc: trio.Process | None = None

    async def start(self) -> None:
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = await trio.lowlevel.open_process(
                [GATEWAY, "serve"], cwd=self.workdir, env=self.env, stdout=out, stderr=err,
                stdin=subprocess.DEVNULL)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    async def wait_healthy(self, seconds: float = 60) -> None:
        """Poll /healthz until the process answers 200 (bounded; fails if it exits)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as client:
            with trio.fail_after(seconds):
                while True:
                    assert self.proc.poll() is None, f"gateway exited early:\n{self.stderr}"
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.05)

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)

    async def stop(self, signum: int = signal.SIGTERM,
                   seconds: float = GRACE_SECONDS + 10) -> int:
        """Send ``signum``; return the exit code, which must come within ``seconds``."""
        self.proc.send_signal(signum)
        with trio.fail_after(seconds):
            return await self.proc.wait()

    async def kill(self) -> None:
        """Safety net for ``finally``: never leave a gateway behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await self.proc.wait()

    def events(self) -> list[dict]:
        """Every stderr line, each of which must be a JSON object with an ``event``."""
        parsed = []
        for line in self.stderr.splitlines():
            record = json.loads(line)
            assert isinstance(record, dict) and "event" in record, line
            parsed.append(record)
        return parsed

    def named(self, name: str) -> list[dict]:
        """The stderr events called ``name`` (lines that are not JSON are skipped: a
        process killed mid-write can leave half a line)."""
        found = []
        for line in self.stderr.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                found.append(record)
        return found
