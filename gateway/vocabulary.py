"""The gateway's words, defined once: what a campaign, a contact, an agent and a call can be.

The store writes them, the engine decides by them, the HTTP schemas and the OpenAPI document
list them, the snapshots count by them, the SDK and the CLI offer them. Members are ``str``
(``StrEnum``), so they compare equal to the text the database and the JSON hold, and are
written as that text. The SQL files spell the same words; ``tests/test_vocabulary.py``
checks them against the database's CHECK constraints.
"""

from __future__ import annotations

import enum
from typing import Literal

__all__ = [
    "DO_NOT_CALL_OUTCOME",
    "MAX_ATTEMPTS",
    "MAX_CALLBACK_AHEAD_SECONDS",
    "MAX_DISPOSITION_NOTES_CHARS",
    "POLICY_OUTCOMES",
    "RETRYABLE",
    "TERMINAL",
    "WEEKDAYS",
    "AgentStatus",
    "CampaignStatus",
    "ContactStatus",
    "DeliveryStatus",
    "Disposition",
    "DncSource",
    "HangupBy",
    "Outcome",
    "RejectionReason",
    "SimulatedAgentOutcome",
    "SimulatedOutcome",
    "WebhookEvent",
]


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"            # created, not started
    SCHEDULED = "scheduled"    # starts by itself at scheduled_at
    RUNNING = "running"        # dialing
    PAUSED = "paused"          # no new dials; calls in flight finish
    COMPLETED = "completed"    # every contact decided, or stopped
    FAILED = "failed"          # could not go on (failure_reason says why)


# Statuses a campaign never leaves.
TERMINAL: frozenset[CampaignStatus] = frozenset({CampaignStatus.COMPLETED,
                                                 CampaignStatus.FAILED})


class ContactStatus(enum.StrEnum):
    PENDING = "pending"              # not dialed yet
    IN_PROGRESS = "in_progress"      # a call is live
    RETRY_PENDING = "retry_pending"  # waits for next_attempt_at
    COMPLETED = "completed"          # answered
    FAILED = "failed"                # no attempts left, or not retryable
    SKIPPED = "skipped"              # never dialed: the campaign was stopped, or the
                                     # number is on the do-not-call list


class AgentStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class Outcome(enum.StrEnum):
    """How one call attempt ended."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    INVALID_NUMBER = "invalid_number"
    INTERRUPTED = "interrupted"  # the gateway stopped (or lost the call) while it was live
    # The contact answered but the agent leg could not be set up (the agent rejected,
    # did not answer in time, was unreachable; or the contact's answer had no offer).
    AGENT_UNAVAILABLE = "agent_unavailable"


# Outcomes worth another attempt, while the contact has attempts left.
RETRYABLE: frozenset[Outcome] = frozenset({Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED,
                                           Outcome.INTERRUPTED, Outcome.AGENT_UNAVAILABLE})


# A skipped contact's last_outcome when its number was on the do-not-call list at its
# turn (no attempt was made, so it is not an Outcome).
DO_NOT_CALL_OUTCOME = "do_not_call"


class Disposition(enum.StrEnum):
    """How the agent says an answered call went (the API, or X-Disposition on its BYE)."""

    COMPLETED = "completed"            # done: the contact is completed
    VOICEMAIL = "voicemail"            # reached a voicemail: retried by the policy
    CALLBACK = "callback"              # call again at callback_at
    DO_NOT_CALL = "do_not_call"        # the number goes on the do-not-call list
    NOT_INTERESTED = "not_interested"  # done: the contact is completed


# The outcomes a campaign's retry_policy may give their own delay and attempts to
# (voicemail: an answered call the agent marked so).
POLICY_OUTCOMES: tuple[str, ...] = (Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED,
                                    Outcome.AGENT_UNAVAILABLE, Disposition.VOICEMAIL)
# No contact is dialed more than this many times, whatever the policy or callbacks.
MAX_ATTEMPTS = 6
# How far ahead an agent may ask to be called back, and how long its notes may be.
MAX_CALLBACK_AHEAD_SECONDS = 30 * 24 * 3600
MAX_DISPOSITION_NOTES_CHARS = 2_000
# A calling window's days, as the API writes them (Monday first, as ISO numbers them).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DncSource(enum.StrEnum):
    """How a number got on the do-not-call list."""

    API = "api"                  # POST /api/v1/dnc with JSON
    UPLOAD = "upload"            # POST /api/v1/dnc with a CSV
    DISPOSITION = "disposition"  # the agent's do_not_call disposition


class HangupBy(enum.StrEnum):
    """Who ended a call that was answered."""

    CONTACT = "contact"  # the contact's side (the trunk) hung up
    AGENT = "agent"      # the agent's side hung up
    GATEWAY = "gateway"  # max_call_seconds, a shutdown, or an agent leg that failed

class RejectionReason(enum.StrEnum):
    """Why a CSV row was not imported."""

    EMPTY = "empty"                    # a blank row, or no phone number
    INVALID_NUMBER = "invalid_number"  # not a valid number (in the default region)
    DUPLICATE = "duplicate"            # the same E.164 number as an earlier row
    COLUMN_COUNT = "column_count"      # more cells than the header has columns
    DO_NOT_CALL = "do_not_call"        # the number is on the account's do-not-call list
    INVALID_TIMEZONE = "invalid_timezone"  # the timezone cell is not an IANA zone name


# What the simulated carrier can be told to produce: every outcome of the carrier's (not
# interrupted, which only the gateway itself causes, nor agent_unavailable, which the
# simulated agent decides: SimulatedAgentOutcome) (a Literal, so the config file's errors
# list the choices; tests/test_vocabulary.py checks it is exactly that subset of Outcome).
SimulatedOutcome = Literal["answered", "busy", "no_answer", "failed", "invalid_number"]
# What the simulated agent does with an answered call: take it, or be unavailable.
SimulatedAgentOutcome = Literal["answered", "agent_unavailable"]


class WebhookEvent(enum.StrEnum):
    """What a webhook endpoint can take: each is written with the change it reports."""

    CALL_ENDED = "call.ended"                  # a call's result was recorded
    CONTACT_FINISHED = "contact.finished"      # a dialed contact is completed or failed
    CAMPAIGN_STARTED = "campaign.started"
    CAMPAIGN_PAUSED = "campaign.paused"
    CAMPAIGN_RESUMED = "campaign.resumed"
    CAMPAIGN_COMPLETED = "campaign.completed"  # every contact decided, or stopped
    CAMPAIGN_FAILED = "campaign.failed"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"        # to be sent (again, after a failure: next_attempt_at)
    DELIVERED = "delivered"    # the endpoint answered 2xx
    ABANDONED = "abandoned"    # its endpoint was disabled after failing for a day
