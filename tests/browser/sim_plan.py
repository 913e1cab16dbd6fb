"""What the simulated carrier does with the browser tests' numbers, and their gateway's
other settings."""

from __future__ import annotations

# Numbers (tests' ``us_number``): +1212200xxxx end at once (those ending in 3 are busy);
# +1212201xxxx ring and talk for about a second, so progress visibly moves (those ending in
# 7 are busy); +1212202xxxx stay on the line for two minutes (a campaign still running when
# the test acts).
FAST, PACED, LONG = 0, 10_000, 20_000  # contacts_csv(count, start=...) for each kind
SIM_RULES = [
    {"pattern": "+1212200*3", "outcome": "busy"},
    {"pattern": "+1212200*", "outcome": "answered"},
    {"pattern": "+1212201*7", "outcome": "busy", "ring_seconds": 0.6},
    {"pattern": "+1212201*", "outcome": "answered", "ring_seconds": 0.4, "talk_seconds": 0.8},
    {"pattern": "+1212202*", "outcome": "answered", "ring_seconds": 0.2, "talk_seconds": 120},
]
DASHBOARD_SETTINGS = {
    "telephony": {"sim": {"rules": SIM_RULES}},
    "sse": {"tick_seconds": 0.5},
    # Calls still on the line when a test ends are hung up after a second.
    "http": {"shutdown_grace_seconds": 1},
    "accounts": {"default_concurrent_max": 20, "default_calls_per_minute": 10_000},
    "webhooks": {"poll_seconds": 0.2, "retry_base_seconds": 60},
}
