-- name: snapshot
-- Everything a live-metrics snapshot of campaign $1 at $2 shows, in one round trip.
-- The live phases of its calls are those its dialing process published (0007), if that
-- process still holds the account's lease.
SELECT cp.id AS campaign_id, cp.account_id, cp.status, cp.contacts_total AS total,
       cp.max_concurrent_calls, cp.started_at, cp.completed_at,
       campaign_contact_counts(cp.id) AS contacts,
       campaign_attempt_counts(cp.id) AS outcomes,
       campaign_disposition_counts(cp.id) AS dispositions,
       campaign_waiting_for_window(cp.id, $2) AS waiting_for_window,
       coalesce(lp.ringing, 0) AS ringing, coalesce(lp.connected, 0) AS connected
FROM campaigns cp
LEFT JOIN (campaign_live_phases lp
           JOIN account_leases l ON l.owner = lp.owner AND l.expires_at > now())
       ON lp.campaign_id = cp.id AND l.account_id = cp.account_id
WHERE cp.id = $1;

-- name: publish_phases
-- Process $1's live phases of campaigns $2 ($3 ringing, $4 connected); campaigns $5 no
-- longer run there.
WITH gone AS (
    DELETE FROM campaign_live_phases WHERE owner = $1 AND campaign_id = ANY($5::uuid[])
)
INSERT INTO campaign_live_phases AS lp (campaign_id, owner, ringing, connected, updated_at)
SELECT p.campaign_id, $1, p.ringing, p.connected, now()
FROM unnest($2::uuid[], $3::int[], $4::int[]) AS p(campaign_id, ringing, connected)
JOIN campaigns cp ON cp.id = p.campaign_id
ON CONFLICT (campaign_id) DO UPDATE
SET owner = excluded.owner, ringing = excluded.ringing, connected = excluded.connected,
    updated_at = excluded.updated_at;
