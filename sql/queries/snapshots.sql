-- name: snapshot
-- Everything a live-metrics snapshot shows, in one round trip.
SELECT cp.id AS campaign_id, cp.account_id, cp.status, cp.contacts_total AS total,
       cp.max_concurrent_calls, cp.started_at, cp.completed_at,
       campaign_contact_counts(cp.id) AS contacts,
       campaign_attempt_counts(cp.id) AS outcomes
FROM campaigns cp
WHERE cp.id = $1;
