"""What the engine's actors are built with. ``db`` is the engine's own pool."""

from __future__ import annotations

import attrs

from gateway.config import EngineSettings
from gateway.db import Database
from gateway.engine.budget import Budget
from gateway.engine.leases import Fence, default_peer_name
from gateway.engine.live import LiveAttempts
from gateway.engine.recorder import Recorder
from gateway.metrics import Metrics
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
    # The leases every claim is made under (the lease actor keeps them), and this
    # process's name among the processes on the database (`gateway status`).
    fence: Fence = attrs.field(factory=Fence)
    peer_name: str = attrs.field(factory=default_peer_name)
    # The process's figures for /metrics (dials, outcomes, claim latency).
    metrics: Metrics = attrs.field(factory=Metrics.create)
