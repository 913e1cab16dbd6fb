"""Opening the configured telephony adapter: ``async with open_adapter(settings) as adapter``.

The adapter lives exactly as long as the ``async with`` block. For the SIP adapter that
is its UDP socket and the task reading it; the process opens it before anything that
dials and leaves it after, so calls cancelled at shutdown can still send their CANCEL or
BYE and read the answer. The simulated carrier has nothing to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio

from gateway.config import SipSettings, TelephonySettings
from gateway.startup_errors import sip_error
from gateway.telephony.base import TelephonyAdapter
from gateway.telephony.sim import SimAdapter
from gateway.telephony.sip import SipAdapter
from gateway.telephony.sip.transport import TransportError


@contextlib.asynccontextmanager
async def open_adapter(settings: TelephonySettings) -> AsyncIterator[TelephonyAdapter]:
    """The ``[telephony]`` section's adapter, ready to dial until the block ends.

    Unusable SIP settings are a :class:`~gateway.config.ConfigError` (naming the key); a
    SIP socket that cannot be bound, or a proxy whose name does not resolve, is a
    :class:`~gateway.startup_errors.StartupError`: one line, with the fix.
    """
    if settings.adapter == "sim":
        yield SimAdapter(settings.sim)
    else:
        async with _sip_running(settings.sip) as adapter:
            yield adapter


@contextlib.asynccontextmanager
async def _sip_running(settings: SipSettings) -> AsyncIterator[SipAdapter]:
    adapter = SipAdapter(settings)
    async with trio.open_nursery() as nursery:
        try:
            await nursery.start(adapter.run)
        except (OSError, TransportError) as exc:
            raise sip_error(exc, settings) from exc
        yield adapter
        nursery.cancel_scope.cancel()
