-- Queries the test suite uses to look at the database directly.

-- name: count_campaigns
SELECT count(*) FROM campaigns;

-- name: count_contacts
SELECT count(*) FROM contacts;

-- name: revoke_key
UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1;

-- name: attempts
SELECT a.id, a.contact_id, a.attempt, a.outcome, a.dialed_at, a.answered_at, a.ended_at,
       a.phone_number, a.campaign_id
FROM attempts a WHERE a.campaign_id = $1 ORDER BY a.dialed_at, a.id;

-- name: all_attempts
SELECT a.id, a.contact_id, a.attempt, a.outcome, a.dialed_at, a.ended_at, a.campaign_id
FROM attempts a ORDER BY a.dialed_at, a.id;

-- name: contacts
SELECT coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)) AS id, c.phone_number,
       c.status, c.attempts, c.last_outcome, c.next_attempt_at
FROM contacts c JOIN campaigns cp ON cp.id = c.campaign_id
WHERE c.campaign_id = $1 ORDER BY c.seq;

-- name: engine_open_attempts
-- Attempts of campaign $1 still live (no outcome yet).
SELECT count(*) FROM attempts WHERE campaign_id = $1 AND outcome IS NULL;

-- name: engine_attempt_count
SELECT count(*) FROM attempts WHERE campaign_id = $1;

-- name: engine_campaign
SELECT id, status, failure_reason, scheduled_at, started_at, completed_at
FROM campaigns WHERE id = $1;

-- name: check_constraints
SELECT conname AS name, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c';

-- name: set_contact_status
-- Contacts of campaign $1 with seqs in [$2, $3) get status $4 (as if dialed or stopped).
UPDATE contacts SET status = $4 WHERE campaign_id = $1 AND seq >= $2 AND seq < $3;

-- name: windows_evaluate
-- window_open and window_next_open (0008) of each case: windows $1 (JSON text), zone
-- sets $2 (comma-separated), instants $3; in input order.
SELECT window_open(c.win::jsonb, string_to_array(c.zones, ','), c.at) AS open,
       window_next_open(c.win::jsonb, string_to_array(c.zones, ','), c.at) AS next_open
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS c(win, zones, at, n)
ORDER BY c.n;

-- name: compliance_attempts
-- Campaign $1's attempts with the facts the compliance tests check, in dial order.
SELECT a.id, a.contact_id, a.phone_number, a.attempt, a.outcome, a.dialed_at, a.ended_at,
       a.disposition, a.callback_at
FROM attempts a WHERE a.campaign_id = $1::uuid ORDER BY a.dialed_at, a.id;

-- name: compliance_contacts
-- Campaign $1's contacts with their zone names, in import order.
SELECT c.phone_number, c.status, c.attempts, c.last_outcome, c.disposition,
       c.next_attempt_at, z.names AS zone_names
FROM contacts c
LEFT JOIN campaign_zones z ON z.campaign_id = c.campaign_id AND z.zone = c.zone
WHERE c.campaign_id = $1::uuid ORDER BY c.seq;
