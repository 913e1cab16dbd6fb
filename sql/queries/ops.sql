-- What /readyz and /metrics read.

-- name: migration_applied
-- The latest migration recorded (NULL: none).
SELECT max(version) FROM schema_migrations;

-- name: webhook_backlog
-- Deliveries not delivered yet (pending: never tried, or failed and waiting for their
-- retry), per account of the endpoint; every account with an endpoint, 0 when none waits.
-- Cheap however long the history: the queues are found by skipping through the queue
-- index (webhook_queue_keys: one probe per queue, as the delivery actor's `streams`), and
-- each is counted only past its delivered part (webhook_queues: every delivery at or
-- before the cursor is delivered), so a week of delivered rows costs nothing; what is
-- read is the backlog.
WITH waiting AS (
    SELECT q.endpoint_id, w.n
    FROM webhook_queue_keys() q
    LEFT JOIN webhook_queues c ON c.endpoint_id = q.endpoint_id AND c.campaign_id = q.campaign_id
    CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM webhook_deliveries d
        WHERE d.endpoint_id = q.endpoint_id AND d.campaign_id = q.campaign_id
          AND (d.txid, d.id) > (coalesce(c.delivered_txid, '0'::xid8),
                                coalesce(c.delivered_id, 0))
          AND d.status = 'pending') AS w
)
SELECT e.account_id, coalesce(sum(w.n), 0)::bigint AS undelivered
FROM webhook_endpoints e
LEFT JOIN waiting w ON w.endpoint_id = e.id
GROUP BY e.account_id;
