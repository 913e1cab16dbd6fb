"""What the engine's actors are built with."""

from __future__ import annotations

import attrs

from gateway.config import EngineSettings
from gateway.db import Database
from gateway.engine.budget import Budget
from gateway.engine.recorder import Recorder
from gateway.telephony.base import TelephonyAdapter


@attrs.frozen
class EngineDeps:
    db: Database
    budget: Budget
    recorder: Recorder
    adapter: TelephonyAdapter
    settings: EngineSettings
