"""What the engine's actors are built with. ``db`` is the engine's own pool."""

from __future__ import annotations

import attrs

from gateway.config import EngineSettings
from gateway.db import Database
from gateway.engine.budget import Budget
from gateway.engine.dialer_lock import Fence
from gateway.engine.live import LiveAttempts
from gateway.engine.recorder import Recorder
from gateway.telephony.base import TelephonyAdapter


@attrs.frozen
class EngineDeps:
    db: Database
    budget: Budget
    recorder: Recorder
    adapter: TelephonyAdapter
    settings: EngineSettings
    # Campaigns need an agent with a sip_uri (the SIP adapter's agent leg goes there): a
    # scheduled start checks it as the API's start does.
    agent_sip_uri_required: bool = False
    live: LiveAttempts = attrs.field(factory=LiveAttempts)
    fence: Fence = attrs.field(factory=Fence)  # the dialer lock every claim checks
