"""The harness the SIP tests share (imported as ``test_sip_harness``), and its own checks.

Rules for every SIP test (after trio-websocket's tests):
- Everything on 127.0.0.1; the adapter binds port 0, sipp gets a port found free just
  before it starts; readiness is the port appearing in /proc/net/udp, not a sleep.
- sipp always ends: ``-m`` (calls), ``-timeout`` (seconds), and it is killed on the way
  out of :func:`sipp_uas` whatever happens; its exit status is returned for the test to
  compare (sipp exits 0 when every call of the scenario succeeded).
- The adapter is started with ``nursery.start(adapter.run)`` and cancelled at the end.
- Every test runs under conftest's ``trio.fail_after``.
- A bridged call has two sipp peers (:func:`sipp_bridge`): the trunk (the adapter's
  proxy) and the agent (the request's ``agent_sip_uri``), each a UAS with its own
  scenario, port and workdir. Each scenario checks what its peer receives; a peer that
  must see nothing is stopped (:meth:`Sipp.stop`) and its statistics read.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import re
import signal
import subprocess
import uuid
import xml.etree.ElementTree as ElementTree
from functools import partial
from pathlib import Path

import pytest
import trio
from ports import free_udp_port, udp_port_bound

from gateway.config import SipSettings
from gateway.telephony.base import DialRequest
from gateway.telephony.sip import SipAdapter

SCENARIOS = Path(__file__).parent / "sip"


class Sipp:
    def __init__(self, port: int, process: trio.Process, workdir: Path) -> None:
        self.port = port
        self.proxy = f"127.0.0.1:{port}"
        self.process = process
        self.workdir = workdir

    async def wait(self, seconds: float = 15) -> int:
        """sipp's exit status (0: every call succeeded)."""
        with trio.fail_after(seconds):
            return await self.process.wait()

    async def stop(self, seconds: float = 5) -> int:
        """End sipp now, whatever its scenario is waiting for; its exit status. SIGTERM
        is sipp's soft exit (no new calls, the ongoing ones finish, then it writes its
        logs and statistics and exits). A sipp still running a second later holds a call
        (once in fresh-clone CI, the stopped agent was still up 5 s after the signal):
        a second SIGTERM aborts its calls, and the logs and statistics are written all
        the same. For a peer
        that must have seen nothing: see :meth:`calls_received`."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            with trio.move_on_after(1):
                return await self.process.wait()
            if self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGTERM)
        return await self.wait(seconds)

    def calls_received(self) -> int:
        """How many calls (INVITEs of a new Call-ID) sipp took, once it has exited."""
        return int(self.statistics()["IncomingCall(C)"])

    def messages(self) -> str:
        """Every SIP message sipp sent or received (its -trace_msg log)."""
        path = self.workdir / "messages.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def statistics(self) -> dict[str, str]:
        """sipp's final statistics row (-trace_stat): ``SuccessfulCall(C)``..."""
        with open(self.workdir / "stats.csv", newline="") as stats:
            rows = list(csv.reader(stats, delimiter=";"))
        # strict=False: a sipp stopped by a signal may leave its last row short; keep what pairs.
        return dict(zip(rows[0], rows[-1], strict=False))

    def errors(self) -> str:
        path = self.workdir / "errors.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.asynccontextmanager
async def sipp_uas(scenario: str, workdir: Path, *, calls: int = 1, timeout: int = 20,
                   extra: tuple[str, ...] = (), port: int | None = None):
    """Run sipp as a UAS with ``tests/sip/<scenario>`` until ``calls`` calls are done (on
    ``port``, else a free one)."""
    port = port or free_udp_port()
    command = ["sipp", "-sf", str(SCENARIOS / scenario), "-i", "127.0.0.1",
               "-p", str(port), "-mp", str(free_udp_port()), "-m", str(calls),
               "-timeout", f"{timeout}s", "-timeout_error", "-nostdin",
               "-trace_msg", "-message_file", str(workdir / "messages.log"),
               "-trace_err", "-error_file", str(workdir / "errors.log"),
               "-trace_stat", "-stf", str(workdir / "stats.csv"), *extra]
    async with trio.open_nursery() as nursery:
        process = await nursery.start(partial(
            trio.run_process, command, check=False, cwd=str(workdir),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            with trio.fail_after(5):
                while not udp_port_bound(port):
                    if process.returncode is not None:
                        raise RuntimeError(f"sipp exited at once ({process.returncode})")
                    await trio.sleep(0.01)
            yield Sipp(port, process, workdir)
        finally:
            if process.returncode is None:
                process.kill()


class BridgePeers:
    """The two far ends of bridged calls: a sipp trunk (``proxy``: the adapter's proxy
    setting) and a sipp agent (``agent_uri``: where the adapter sends the agent leg)."""

    def __init__(self, trunk: Sipp, agent: Sipp) -> None:
        self.trunk, self.agent = trunk, agent
        self.proxy = trunk.proxy
        self.agent_uri = f"sip:agent@127.0.0.1:{agent.port}"

    def request(self, to_number: str = "+12025550143", **overrides) -> DialRequest:
        """A dial request whose agent is this sipp agent."""
        return dial_request(to_number, **{"agent_sip_uri": self.agent_uri, **overrides})

    async def wait(self, seconds: float = 15) -> tuple[int, int]:
        """Both exit statuses, (trunk, agent), within ``seconds`` in all."""
        with trio.fail_after(seconds):
            return await self.trunk.process.wait(), await self.agent.process.wait()

    def messages(self) -> tuple[str, str]:
        """Both message logs, (trunk, agent)."""
        return self.trunk.messages(), self.agent.messages()

    def errors(self) -> str:
        """Both error logs, for assertion messages."""
        return f"trunk: {self.trunk.errors()}\nagent: {self.agent.errors()}"


@contextlib.asynccontextmanager
async def sipp_bridge(trunk_scenario: str, agent_scenario: str, workdir: Path, *,
                      calls: int = 1, agent_calls: int | None = None, timeout: int = 20,
                      trunk_extra: tuple[str, ...] = (), agent_extra: tuple[str, ...] = ()):
    """Run a sipp trunk and a sipp agent (both UAS: ``tests/sip/<scenario>``, workdirs
    ``workdir/trunk`` and ``workdir/agent``) until each has done its calls (``calls``;
    the agent's ``agent_calls`` if given)."""
    trunk_dir, agent_dir = workdir / "trunk", workdir / "agent"
    trunk_dir.mkdir(exist_ok=True)
    agent_dir.mkdir(exist_ok=True)
    async with sipp_uas(trunk_scenario, trunk_dir, calls=calls, timeout=timeout,
                        extra=trunk_extra) as trunk, \
            sipp_uas(agent_scenario, agent_dir, timeout=timeout, extra=agent_extra,
                     calls=calls if agent_calls is None else agent_calls) as agent:
        yield BridgePeers(trunk, agent)


class LossyRelay:
    """A UDP relay between the adapter and sipp that drops the datagrams ``drop`` picks
    (the adapter's) and ``drop_back`` picks (sipp's): real packet loss, which sipp cannot
    fake (it takes a retransmission of a message it has not answered for a duplicate, and
    ignores it). ``from_upstream`` keeps the last 200 datagrams sipp sent (material for
    forgeries)."""

    def __init__(self, upstream: tuple[str, int], drop=lambda _: False,
                 drop_back=lambda _: False, *, repeat_finals: bool = False) -> None:
        self.upstream = upstream
        self.drop = drop
        self.drop_back = drop_back
        # sipp aborts a call on a repeated INVITE it has answered (measured: "unexpected
        # message while expecting ACK"), where a UAS's transaction layer repeats its
        # final (RFC 3261 section 17.2.1). With repeat_finals the relay plays that layer:
        # an INVITE sipp answered already gets sipp's final again, from the relay.
        self.repeat_finals = repeat_finals
        self._finals: dict[bytes, bytes] = {}
        self.dropped: list[bytes] = []
        self.dropped_back: list[bytes] = []
        self.from_upstream: collections.deque[bytes] = collections.deque(maxlen=200)
        self.address: tuple[str, int] | None = None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            self.address = sock.getsockname()
            task_status.started(self)
            client = None
            while True:
                data, source = await sock.recvfrom(65536)
                if source == self.upstream:
                    self.from_upstream.append(data)
                    key = _invite_key(data)
                    if key is not None and re.match(rb"SIP/2\.0 [2-6]", data):
                        self._finals[key] = data
                    if self.drop_back(data):
                        self.dropped_back.append(data)
                    elif client is not None:
                        await sock.sendto(data, client)
                elif self.drop(data):
                    self.dropped.append(data)
                elif self.repeat_finals and data.startswith(b"INVITE ") and \
                        _invite_key(data) in self._finals:
                    client = source
                    final = self._finals[_invite_key(data)]
                    if self.drop_back(final):
                        self.dropped_back.append(final)
                    else:
                        await sock.sendto(final, client)
                else:
                    client = source
                    await sock.sendto(data, self.upstream)


def _invite_key(data: bytes) -> bytes | None:
    """Call-ID and CSeq number of an INVITE or of a response to one."""
    call_id = re.search(rb"\r\n(?:Call-ID|i):\s*(\S+)", data, re.IGNORECASE)
    cseq = re.search(rb"\r\nCSeq:\s*(\d+)\s+INVITE", data, re.IGNORECASE)
    if call_id is None or cseq is None:
        return None
    return call_id.group(1) + b" " + cseq.group(1)


def sip_settings(proxy: str, **overrides) -> SipSettings:
    values = dict(proxy=proxy, bind_host="127.0.0.1", bind_port=0, ring_timeout_seconds=1,
                  max_call_seconds=1, username="gateway", password="s3cret")
    values.update(overrides)
    return SipSettings(**values)


@contextlib.asynccontextmanager
async def running_adapter(settings, **extra_settings):
    """A started :class:`SipAdapter`; ``extra_settings`` stand in for keys SipSettings
    does not have yet (e.g. ``timer_t1_ms``)."""
    if extra_settings:
        settings = _Extended(settings, extra_settings)
    async with trio.open_nursery() as nursery:
        adapter = await nursery.start(SipAdapter(settings).run)
        yield adapter
        nursery.cancel_scope.cancel()


class _Extended:
    def __init__(self, settings, extra: dict) -> None:
        self._settings, self._extra = settings, extra

    def __getattr__(self, name: str):
        if name in self._extra:
            return self._extra[name]
        return getattr(self._settings, name)


def dial_request(to_number: str = "+12025550143", **overrides) -> DialRequest:
    values = dict(call_id=uuid.uuid4(), campaign_id=uuid.uuid4(), contact_id=uuid.uuid4(),
                  agent_id=uuid.uuid4(), attempt=1, to_number=to_number,
                  from_number="+14155550100", variables={"first_name": "Ada"})
    values.update(overrides)
    return DialRequest(**values)


class Answers:
    """An ``on_answer`` callback that remembers when it was called."""

    def __init__(self) -> None:
        self.times: list = []         # the datetimes the adapter reported
        self.trio_times: list = []    # trio.current_time() when it did

    async def __call__(self, at) -> None:
        self.times.append(at)
        self.trio_times.append(trio.current_time())


# -- the harness's own checks ---------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.xml")), ids=lambda p: p.name)
def test_scenarios_are_well_formed_xml(path: Path) -> None:
    root = ElementTree.parse(path).getroot()
    assert root.tag == "scenario"


def test_free_port_is_not_bound() -> None:
    assert not udp_port_bound(free_udp_port())


async def test_a_stopped_peer_tells_whether_it_got_a_call(tmp_path):
    """What the bridged tests use to show the agent was never INVITEd: a sipp peer stopped
    before any call reports none; one that got an INVITE reports it."""
    async with sipp_bridge("answer_and_wait.xml", "agent_answer.xml", tmp_path) as peers:
        assert await peers.trunk.stop() == 0
        invite = (f"INVITE {peers.agent_uri} SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKharness\r\n"
                  "From: <sip:+12025550143@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\n"
                  "Call-ID: harness@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
                  "Contact: <sip:+12025550143@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n")
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            await sock.sendto(invite.encode(), ("127.0.0.1", peers.agent.port))
            with trio.fail_after(5):
                while "INVITE sip:agent@" not in peers.agent.messages():
                    await trio.sleep(0.01)
        await peers.agent.stop()
    assert peers.trunk.calls_received() == 0
    assert "INVITE" not in peers.trunk.messages()
    assert peers.agent.calls_received() == 1
