"""One vocabulary: the enums in gateway.vocabulary are the words the database accepts, the
API documents and the simulator may produce."""

from __future__ import annotations

import re
import typing

import pytest

from gateway.config import SimulatedHangup
from gateway.contacts_csv import REJECTION_REASONS
from gateway.vocabulary import (
    AgentStatus,
    CampaignStatus,
    ContactStatus,
    DeliveryStatus,
    Disposition,
    DncSource,
    HangupBy,
    Outcome,
    RejectionReason,
    SimulatedAgentOutcome,
    SimulatedOutcome,
)


def _words(check: str) -> set[str]:
    return set(re.findall(r"'([a-z_]+)'::text", check))


@pytest.mark.parametrize(("table", "column", "enum"), [
    ("campaigns", "status", CampaignStatus), ("contacts", "status", ContactStatus),
    ("agents", "status", AgentStatus), ("attempts", "outcome", Outcome),
    ("attempts", "hangup_by", HangupBy), ("attempts", "disposition", Disposition),
    ("contacts", "disposition", Disposition), ("dnc_numbers", "source", DncSource),
    ("webhook_deliveries", "status", DeliveryStatus)])
async def test_the_database_accepts_exactly_the_enum(db, table, column, enum):
    checks = await db.fetch("testing.check_constraints", table)
    mine = [row["definition"] for row in checks if f"({column} = ANY" in row["definition"]
            or f"({column} IS NULL) OR ({column} = ANY" in row["definition"]]
    assert len(mine) == 1, checks
    assert _words(mine[0]) == {member.value for member in enum}


async def test_the_openapi_document_lists_the_enums(api):
    schemas = (await api.get("/openapi.json")).json()["components"]["schemas"]
    for enum in (CampaignStatus, ContactStatus, AgentStatus, Outcome, RejectionReason,
                 HangupBy):
        assert schemas[enum.__name__]["enum"] == [member.value for member in enum]
    assert "agent_unavailable" in schemas["Outcome"]["enum"]


def test_the_simulator_produces_every_outcome_the_gateway_does_not_cause():
    """The carrier's side: every outcome but interrupted (the gateway's) and
    agent_unavailable (the agent's side). The agent's side: it takes the call or not."""
    assert set(typing.get_args(SimulatedOutcome)) == \
        set(Outcome) - {Outcome.INTERRUPTED, Outcome.AGENT_UNAVAILABLE}
    assert set(typing.get_args(SimulatedAgentOutcome)) == \
        {Outcome.ANSWERED, Outcome.AGENT_UNAVAILABLE}


def test_the_simulator_hangs_up_as_the_contact_or_the_agent():
    """A simulated call that reached the agent is hung up by one side; the gateway's own
    hang-ups (a shutdown, an agent leg that failed) are not the simulator's to choose."""
    assert set(typing.get_args(SimulatedHangup)) == set(HangupBy) - {HangupBy.GATEWAY}


def test_import_rejections_are_the_enum():
    assert REJECTION_REASONS == tuple(RejectionReason)
    assert all(isinstance(reason, str) for reason in REJECTION_REASONS)
