-- The call.ended and contact.finished payloads built as typed rows turned to JSON, not
-- with json_build_object.
--
-- json_build_object works out each argument's type and its output function again for
-- every object it builds (its arguments are "any"): 18 fields of a call, 10 of a
-- contact, on every event, in the statement that records each batch of results (the
-- dial loop's path). A row of a declared type is turned to JSON by to_json with the
-- same text per field, keys in the type's order (the API's), without the spaces
-- json_build_object puts around each colon: 20,000 call.ended payloads built by one
-- SELECT took 172-213 -> 134-136 ms on the benchmarks' 2-vCPU machine, and each is 70
-- bytes shorter. The functions stay inlinable (no sub-select): the planner writes each
-- field's expression into the statement.

CREATE TYPE webhook_call_fields AS (
    id uuid, contact_id uuid, phone_number text, attempt integer, outcome text,
    dialed_at text, answered_at text, connected_at text, ended_at text,
    duration_seconds double precision, hangup_by text, sip_call_id text, sip_status integer,
    agent_sip_status integer, agent_sip_call_id text, disposition text, callback_at text,
    disposition_notes text);
CREATE TYPE webhook_call_data AS (campaign_id uuid, call webhook_call_fields);

CREATE TYPE webhook_contact_fields AS (
    id uuid, row_number integer, phone_number text, custom_fields json, status text,
    attempts integer, last_outcome text, last_attempt_at text, next_attempt_at text,
    disposition text);
CREATE TYPE webhook_contact_data AS (campaign_id uuid, contact webhook_contact_fields);

CREATE TYPE webhook_envelope AS (type text, "timestamp" text, data json);

-- The envelope every delivery carries: {"type", "timestamp", "data"}.
CREATE OR REPLACE FUNCTION webhook_payload(type text, data json) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
RETURN to_json(ROW(type, webhook_time(now()), data)::webhook_envelope);

-- call.ended: the call as GET /campaigns/{id}/calls shows it, with its campaign.
CREATE OR REPLACE FUNCTION webhook_call(a attempts) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
RETURN to_json(ROW(a.campaign_id, ROW(
    a.id, a.contact_id, a.phone_number, a.attempt, a.outcome, webhook_time(a.dialed_at),
    webhook_time(a.answered_at), webhook_time(a.connected_at), webhook_time(a.ended_at),
    a.duration_seconds, a.hangup_by, a.sip_call_id, a.sip_status, a.agent_sip_status,
    a.agent_sip_call_id, a.disposition, webhook_time(a.callback_at), a.disposition_notes
)::webhook_call_fields)::webhook_call_data);

-- contact.finished: the contact as GET /campaigns/{id}/contacts shows it.
CREATE OR REPLACE FUNCTION webhook_contact(c contacts, prefix uuid, names text[]) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
RETURN to_json(ROW(c.campaign_id, ROW(
    coalesce(c.id, contact_id(prefix, c.seq)), c.row_number, c.phone_number,
    contact_fields(names, c.custom_fields), c.status, c.attempts, c.last_outcome,
    webhook_time(c.last_attempt_at), webhook_time(c.next_attempt_at), c.disposition
)::webhook_contact_fields)::webhook_contact_data);
