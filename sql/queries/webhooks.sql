-- Webhook endpoints and their deliveries (0009).

-- name: emit_campaign
-- Event $2 of campaign $1 (campaign.started, .paused...), in the transaction that made
-- the change: the campaign as it is now, for each endpoint of its account taking $2.
INSERT INTO webhook_deliveries (endpoint_id, event_id, campaign_id, type, payload)
SELECT e.id, ev.event_id, cp.id, $2, webhook_payload($2, webhook_campaign(cp.id))
FROM campaigns cp
CROSS JOIN (SELECT gen_random_uuid() AS event_id) AS ev
JOIN webhook_endpoints e ON e.account_id = cp.account_id AND e.disabled_at IS NULL
                        AND $2 = ANY(e.events)
WHERE cp.id = $1
ORDER BY e.id;

-- name: insert_endpoint
INSERT INTO webhook_endpoints (id, account_id, url, description, events, secret)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, url, description, events, created_at, failing_since, disabled_at,
          disabled_reason;

-- name: count_endpoints
SELECT count(*) FROM webhook_endpoints WHERE account_id = $1;

-- name: endpoints_page
SELECT id, url, description, events, created_at, failing_since, disabled_at, disabled_reason
FROM webhook_endpoints WHERE account_id = $1
ORDER BY created_at, id
LIMIT $2 OFFSET $3;

-- name: endpoint
SELECT id, url, description, events, created_at, failing_since, disabled_at, disabled_reason
FROM webhook_endpoints WHERE account_id = $1 AND id = $2;

-- name: delete_endpoint
-- Its deliveries go with it (pending ones are never sent).
DELETE FROM webhook_endpoints WHERE account_id = $1 AND id = $2 RETURNING id;

-- name: enable_endpoint
-- A disabled endpoint takes events again and its abandoned deliveries of the last day
-- are sent again.
WITH endpoint AS (
    UPDATE webhook_endpoints
    SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL
    WHERE account_id = $1 AND id = $2
    RETURNING id
), revived AS (
    UPDATE webhook_deliveries
    SET status = 'pending', next_attempt_at = now(), claimed_by = NULL, claimed_until = NULL
    WHERE endpoint_id = (SELECT id FROM endpoint) AND status = 'abandoned'
      AND created_at > now() - interval '1 day'
)
SELECT id FROM endpoint;

-- name: deliveries_page
-- Newest first; $4: only this status (NULL: all).
SELECT d.id, d.event_id, d.campaign_id, d.type, d.status, d.attempts, d.created_at,
       d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_error, d.delivered_at
FROM webhook_deliveries d
WHERE d.endpoint_id = $1 AND ($4::text IS NULL OR d.status = $4)
ORDER BY d.id DESC
LIMIT $2 OFFSET $3;

-- name: count_deliveries
SELECT count(*) FROM webhook_deliveries
WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2);

-- name: resend
-- Event $2 of endpoint $1 once more, as a new delivery of the same event (same
-- webhook-id: a receiver that has it already can tell), at the end of its campaign's
-- queue. (Rare: found through the endpoint's key, newest first.)
INSERT INTO webhook_deliveries (endpoint_id, event_id, campaign_id, type, payload)
SELECT endpoint_id, event_id, campaign_id, type, payload
FROM webhook_deliveries WHERE endpoint_id = $1 AND event_id = $2
ORDER BY id DESC LIMIT 1
RETURNING id, event_id, campaign_id, type, status, attempts, created_at, next_attempt_at,
          last_attempt_at, last_status_code, last_error, delivered_at;

-- name: streams
-- The queues with something to send: each endpoint's campaigns, found by skipping through
-- the queue index (one probe per queue, however long the queues), each with its first
-- pending delivery after its delivered part, due, unclaimed and written by a transaction
-- that has ended. At most $1 queues.
WITH visible AS (
    SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin
)
SELECT q.endpoint_id, q.campaign_id
FROM webhook_queue_keys() q
JOIN webhook_endpoints e ON e.id = q.endpoint_id AND e.disabled_at IS NULL
CROSS JOIN visible v
LEFT JOIN webhook_queues c ON c.endpoint_id = q.endpoint_id AND c.campaign_id = q.campaign_id
CROSS JOIN LATERAL (
    SELECT d.id, d.txid, d.next_attempt_at, d.claimed_until FROM webhook_deliveries d
    WHERE d.endpoint_id = q.endpoint_id AND d.campaign_id = q.campaign_id
      AND (d.txid, d.id) > (coalesce(c.delivered_txid, '0'::xid8), coalesce(c.delivered_id, 0))
      AND d.status = 'pending'
    ORDER BY d.txid, d.id LIMIT 1) AS h
WHERE h.txid < v.xmin AND h.next_attempt_at <= now()
  AND (h.claimed_until IS NULL OR h.claimed_until < now())
LIMIT $1;

-- name: lock_queue
-- Claims of one queue are made one at a time (the claim is then in its rows).
SELECT pg_try_advisory_xact_lock(hashtextextended($1::uuid::text || $2::uuid::text, 9));

-- name: claim_head
-- The head of endpoint $1's queue for campaign $2, claimed by process $3 until $4 seconds
-- from now if it is due and no one else's claim on it is current: the claim on the head
-- is the claim on the queue (the sender moves it to the next head as it goes, see
-- delivered). Returns when the claim runs out.
WITH head AS (SELECT id FROM webhook_queue_next($1, $2, 1))
UPDATE webhook_deliveries d
SET claimed_by = $3, claimed_until = now() + make_interval(secs => $4)
FROM head
WHERE d.endpoint_id = $1 AND d.id = head.id AND d.next_attempt_at <= now()
  AND (d.claimed_until IS NULL OR d.claimed_until < now() OR d.claimed_by = $3)
RETURNING d.claimed_until;

-- name: batch
-- The next $3 deliveries of the queue (its head first), with what sending them needs.
SELECT id, event_id, type, payload::text AS payload, attempts, created_at
FROM webhook_queue_next($1, $2, $3);

-- name: endpoint_for_sending
SELECT id, url, secret, failing_since, disabled_at FROM webhook_endpoints WHERE id = $1;

-- name: delivered
-- Deliveries $1 of endpoint $7 sent at $2 (parallel arrays) with status codes $3, the
-- next ones of their queue in order: done (HOT updates: no indexed column changes), and
-- the queue's delivered part now ends at the last of them; the endpoint is failing no
-- more. The queue's claim (process $5, until $6) moves to its next head $4 (NULL: none
-- left in the batch).
WITH done AS (
    UPDATE webhook_deliveries d
    SET status = 'delivered', delivered_at = i.at, last_attempt_at = i.at,
        last_status_code = i.code, last_error = NULL, attempts = d.attempts + 1,
        claimed_by = NULL, claimed_until = NULL
    FROM unnest($1::bigint[], $2::timestamptz[], $3::int[]) AS i(id, at, code)
    WHERE d.endpoint_id = $7 AND d.id = i.id AND d.status = 'pending'
    RETURNING d.endpoint_id, d.campaign_id, d.txid, d.id
), cursor AS (
    INSERT INTO webhook_queues AS c (endpoint_id, campaign_id, delivered_txid, delivered_id)
    SELECT endpoint_id, campaign_id, txid, id FROM done ORDER BY txid DESC, id DESC LIMIT 1
    ON CONFLICT (endpoint_id, campaign_id) DO UPDATE
    SET delivered_txid = excluded.delivered_txid, delivered_id = excluded.delivered_id
    WHERE (c.delivered_txid, c.delivered_id) < (excluded.delivered_txid, excluded.delivered_id)
), moved AS (
    UPDATE webhook_deliveries SET claimed_by = $5, claimed_until = $6
    WHERE endpoint_id = $7 AND id = $4 AND status = 'pending'
)
UPDATE webhook_endpoints e SET failing_since = NULL
WHERE e.id IN (SELECT endpoint_id FROM done) AND e.failing_since IS NOT NULL;

-- name: failed
-- Delivery $1 of endpoint $8 (its queue's head) failed at $2 (status code $3, or error
-- $4): tried again at $5, the queue's claim let go with it. The endpoint failing since
-- more than $6 seconds is disabled (reason $7). Returns whether it was disabled now.
WITH attempt AS (
    UPDATE webhook_deliveries
    SET attempts = attempts + 1, last_attempt_at = $2, last_status_code = $3,
        last_error = $4, next_attempt_at = $5, claimed_by = NULL, claimed_until = NULL
    WHERE endpoint_id = $8 AND id = $1 AND status = 'pending'
    RETURNING endpoint_id
), endpoint AS (
    UPDATE webhook_endpoints e
    SET failing_since = coalesce(e.failing_since, $2),
        disabled_at = CASE WHEN e.failing_since < $2 - make_interval(secs => $6)
                           THEN $2 END,
        disabled_reason = CASE WHEN e.failing_since < $2 - make_interval(secs => $6)
                               THEN $7 END
    WHERE e.id = (SELECT endpoint_id FROM attempt) AND e.disabled_at IS NULL
    RETURNING e.disabled_at IS NOT NULL AS disabled
)
SELECT coalesce((SELECT disabled FROM endpoint), false);

-- name: abandon
-- The pending deliveries of disabled endpoint $1 are not sent.
UPDATE webhook_deliveries
SET status = 'abandoned', claimed_by = NULL, claimed_until = NULL
WHERE endpoint_id = $1 AND status = 'pending';

-- name: release
-- The claim of process $2 on deliveries $1 of endpoint $3 (the head it had moved to) let
-- go: the sender stops; anyone may take the queue.
UPDATE webhook_deliveries SET claimed_by = NULL, claimed_until = NULL
WHERE endpoint_id = $3 AND id = ANY($1::bigint[]) AND status = 'pending'
  AND claimed_by = $2;

-- name: forget_delivered
-- Retention: delivered and abandoned deliveries older than $1 seconds.
DELETE FROM webhook_deliveries
WHERE (endpoint_id, id) IN (
    SELECT endpoint_id, id FROM webhook_deliveries
    WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1)
    LIMIT 10000);
