-- name: page
SELECT id, contact_id, phone_number, attempt, outcome, dialed_at, answered_at, connected_at,
       ended_at, duration_seconds, hangup_by, sip_call_id, sip_status, agent_sip_status,
       agent_sip_call_id
FROM attempts
WHERE campaign_id = $1
ORDER BY dialed_at, id
LIMIT $2 OFFSET $3;

-- name: count
-- Every attempt of campaign $1, from the counts the attempts triggers keep (0003).
SELECT coalesce((SELECT n FROM attempt_counts WHERE campaign_id = $1 AND kind = 'dialed'), 0);
