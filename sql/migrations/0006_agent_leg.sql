-- The agent leg: a contact who answers is connected to the campaign's voice agent.
--
-- An attempt now records when the agent leg was up (connected_at: the call is `answered`
-- only from then on), who hung up an answered call, and the agent's side of it (the final
-- status of its INVITE and its Call-ID). A contact who answered but could not be connected
-- (the agent rejected, did not answer in time, was unreachable) ends `agent_unavailable`:
-- answered_at set, connected_at NULL, hung up by the gateway. It is retried like `failed`.
--
-- Attempt counts by outcome (0003) are kept per outcome word, whatever the word: the new
-- outcome is counted by the same triggers with nothing to change here. The new columns
-- have no default, so adding them rewrites nothing; the outcome CHECK is replaced by a
-- wider one in the same statement (one scan of the attempts, which all pass it).

ALTER TABLE attempts
    ADD COLUMN connected_at timestamptz,
    ADD COLUMN hangup_by text
        CONSTRAINT attempts_hangup_by_check CHECK (hangup_by IN ('contact', 'agent', 'gateway')),
    ADD COLUMN agent_sip_status integer,
    ADD COLUMN agent_sip_call_id text,
    DROP CONSTRAINT attempts_outcome_check,
    ADD CONSTRAINT attempts_outcome_check CHECK (outcome IN
        ('answered', 'busy', 'no_answer', 'failed', 'invalid_number', 'interrupted',
         'agent_unavailable'));

-- Agents: the agent leg carries the trunk's SDP to the agent untouched, so an agent's own
-- media address (the SDP offer's address, from before the agent leg) has nothing left to
-- do. An agent may cap the calls it takes at once (an AI agent platform's or an IVR's
-- seats): NULL is no cap. The engine reserves a seat with each call's slot when it dials,
-- so an answered contact always finds one free. Neither change rewrites the table.
ALTER TABLE agents
    DROP COLUMN media_address,
    ADD COLUMN max_concurrent_calls integer
        CONSTRAINT agents_max_concurrent_calls_check CHECK (max_concurrent_calls >= 1);
