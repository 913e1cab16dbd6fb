-- Webhooks: an account's endpoints, and the outbox of their deliveries.
--
-- webhook_endpoints: where an account's events go (url, the event types it takes) and the
-- secret deliveries are signed with (Standard Webhooks: "whsec_" + base64 of the key).
-- failing_since: the first failed attempt since the last success; an endpoint failing for
-- 24 h is disabled (disabled_at, disabled_reason) and takes no new events.
--
-- webhook_deliveries: the outbox. A row is one event for one endpoint, written in the same
-- transaction as the change it reports (no event without its change, no change without
-- its event), for the endpoints subscribed at that moment. event_id is the event's id, the
-- same for every endpoint it goes to (the webhook-id header: receivers deduplicate on it);
-- (txid, id) orders them: the writing transaction's id, then the order the transaction
-- wrote them in. They are delivered one at a time per endpoint and campaign, in that order,
-- a failed one holding back those behind it until it succeeds or is abandoned, and only
-- once every transaction that could still write one before them has ended (txid below the
-- xmin of the current snapshot): a later commit never slips an event in before one already
-- sent.
-- claimed_by/claimed_until: the process sending it now (a claim another process may take
-- over only once it has passed; the sender starts no request after half of it).
-- Delivered rows stay listable for a week.

CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    url text NOT NULL,
    description text,
    events text[] NOT NULL,
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    failing_since timestamptz,
    disabled_at timestamptz,
    disabled_reason text
);

CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id uuid NOT NULL,
    campaign_id uuid NOT NULL,
    type text NOT NULL,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'abandoned')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error text,
    delivered_at timestamptz,
    claimed_by uuid,
    claimed_until timestamptz
-- Room in each page for the claim's and the result's new versions of a row (neither
-- changes an indexed column, so both can be HOT updates: no index entry written).
) WITH (fillfactor = 50);

-- The queues: each endpoint's deliveries of each campaign, in order. Not partial (no
-- status = 'pending' predicate): a delivery's result then changes no indexed column, and
-- its update is HOT (no index entry written), which made delivering cost a third of
-- what dialing cost in PostgreSQL; webhook_queues says where each queue's pending part
-- starts.
CREATE INDEX webhook_deliveries_queue
    ON webhook_deliveries (endpoint_id, campaign_id, txid, id);
-- The listing, newest first, and the retention sweep.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);

-- Where each queue's undelivered part starts: every delivery at or before
-- (delivered_txid, delivered_id) has been delivered (they are sent in that order, and no
-- delivery can appear before one already sent). A queue without a row has delivered none.
CREATE TABLE webhook_queues (
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    campaign_id uuid NOT NULL,
    delivered_txid xid8 NOT NULL,
    delivered_id bigint NOT NULL,
    PRIMARY KEY (endpoint_id, campaign_id)
);

-- The payloads: the objects as the API shows them, times in UTC with a Z.
CREATE FUNCTION webhook_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

-- The envelope every delivery carries: {"type", "timestamp", "data"}.
CREATE FUNCTION webhook_payload(type text, data jsonb) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN jsonb_build_object('type', type, 'timestamp', webhook_time(now()), 'data', data);

-- call.ended: the call as GET /campaigns/{id}/calls shows it, with its campaign.
CREATE FUNCTION webhook_call(a attempts) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN jsonb_build_object(
    'campaign_id', a.campaign_id,
    'call', jsonb_build_object(
        'id', a.id, 'contact_id', a.contact_id, 'phone_number', a.phone_number,
        'attempt', a.attempt, 'outcome', a.outcome, 'dialed_at', webhook_time(a.dialed_at),
        'answered_at', webhook_time(a.answered_at), 'connected_at', webhook_time(a.connected_at),
        'ended_at', webhook_time(a.ended_at), 'duration_seconds', a.duration_seconds,
        'hangup_by', a.hangup_by, 'sip_call_id', a.sip_call_id, 'sip_status', a.sip_status,
        'agent_sip_status', a.agent_sip_status, 'agent_sip_call_id', a.agent_sip_call_id,
        'disposition', a.disposition, 'callback_at', webhook_time(a.callback_at),
        'disposition_notes', a.disposition_notes));

-- contact.finished: the contact as GET /campaigns/{id}/contacts shows it.
CREATE FUNCTION webhook_contact(c contacts, prefix uuid, names text[]) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN jsonb_build_object(
    'campaign_id', c.campaign_id,
    'contact', jsonb_build_object(
        'id', coalesce(c.id, contact_id(prefix, c.seq)), 'row_number', c.row_number,
        'phone_number', c.phone_number, 'status', c.status, 'attempts', c.attempts,
        'last_outcome', c.last_outcome, 'last_attempt_at', webhook_time(c.last_attempt_at),
        'next_attempt_at', webhook_time(c.next_attempt_at), 'disposition', c.disposition,
        'custom_fields', contact_fields(names, c.custom_fields)));

-- campaign.*: the campaign's state and contact counts, as GET /campaigns/{id} shows them.
CREATE FUNCTION webhook_campaign(campaign uuid) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (
    SELECT jsonb_build_object('campaign', jsonb_build_object(
        'id', cp.id, 'name', cp.name, 'status', cp.status,
        'started_at', webhook_time(cp.started_at), 'completed_at', webhook_time(cp.completed_at),
        'failure_reason', cp.failure_reason,
        'contact_counts', (
            SELECT jsonb_build_object(
                'total', cp.contacts_total,
                'pending', coalesce(sum(n) FILTER (WHERE status = 'pending'), 0),
                'in_progress', coalesce(sum(n) FILTER (WHERE status = 'in_progress'), 0),
                'retry_pending', coalesce(sum(n) FILTER (WHERE status = 'retry_pending'), 0),
                'completed', coalesce(sum(n) FILTER (WHERE status = 'completed'), 0),
                'failed', coalesce(sum(n) FILTER (WHERE status = 'failed'), 0),
                'skipped', coalesce(sum(n) FILTER (WHERE status = 'skipped'), 0))
            FROM contact_counts WHERE campaign_id = cp.id)))
    FROM campaigns cp WHERE cp.id = campaign);

-- The next n deliveries to send of an endpoint's queue for a campaign: after its
-- delivered part, pending, written by transactions that have ended, in order (its head
-- first). Inlined into the statements that use it.
CREATE FUNCTION webhook_queue_next(endpoint uuid, campaign uuid, n integer)
RETURNS SETOF webhook_deliveries
LANGUAGE sql STABLE AS $$
    SELECT d.* FROM webhook_deliveries d
    WHERE d.endpoint_id = endpoint AND d.campaign_id = campaign
      AND (d.txid, d.id) > (
          coalesce((SELECT c.delivered_txid FROM webhook_queues c
                    WHERE c.endpoint_id = endpoint AND c.campaign_id = campaign), '0'::xid8),
          coalesce((SELECT c.delivered_id FROM webhook_queues c
                    WHERE c.endpoint_id = endpoint AND c.campaign_id = campaign), 0))
      AND d.status = 'pending' AND d.txid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY d.txid, d.id LIMIT n
$$;
