"""open_adapter: the configured adapter lives exactly as long as its ``async with`` block.

The simulated carrier dials at once (on trio's mock clock); the SIP adapter is bound on
entry and closed on exit; a SIP port another program holds is the one plain start-up line
the command prints (the same lines_for the CLI uses).
"""

from __future__ import annotations

import socket

import pytest
import trio
from test_sip_harness import Answers, dial_request, sip_settings

from gateway.config import TelephonySettings
from gateway.startup_errors import lines_for
from gateway.telephony.open import open_adapter
from gateway.telephony.sim import SimAdapter
from gateway.telephony.sip import SipAdapter
from gateway.vocabulary import Outcome


async def test_sim_yields_an_adapter_that_dials(autojump_clock):
    settings = TelephonySettings.model_validate({"adapter": "sim", "sim": {"rules": [
        {"pattern": "*", "outcome": "answered", "ring_seconds": 2, "talk_seconds": 30}]}})
    answers = Answers()
    with trio.fail_after(60):  # trio time: ring and talk are 32 s
        async with open_adapter(settings) as adapter:
            assert isinstance(adapter, SimAdapter)
            began = trio.current_time()
            result = await adapter.dial(dial_request(), answers)
    assert result.outcome == Outcome.ANSWERED
    assert trio.current_time() - began == pytest.approx(32)
    assert result.duration_seconds == pytest.approx(30)
    assert answers.trio_times == [pytest.approx(began + 2)]


async def test_sip_is_bound_inside_the_block_and_closed_after_it():
    settings = TelephonySettings(adapter="sip", sip=sip_settings("127.0.0.1:5060"))
    with trio.fail_after(10):
        async with open_adapter(settings) as adapter:
            assert isinstance(adapter, SipAdapter)
            host, port = adapter.local_address
            assert host == "127.0.0.1" and port > 0
        with pytest.raises(RuntimeError, match="not running"):
            await adapter.dial(dial_request(), Answers())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the socket was closed with the block


async def test_sip_port_in_use_is_one_start_up_line():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        settings = TelephonySettings(adapter="sip",
                                     sip=sip_settings("127.0.0.1:5060", bind_port=port))
        entered = False
        with trio.fail_after(10), pytest.raises(BaseException) as failure:
            async with open_adapter(settings):
                entered = True
    assert not entered
    assert lines_for(failure.value, None) == [
        f"the SIP adapter cannot listen on 127.0.0.1:{port}: the port is in use by another "
        "program. Fix: stop that program, or set telephony.sip.bind_port to a free port."]
