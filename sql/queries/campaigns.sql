-- name: lock_agent
-- FOR SHARE: the agent cannot be deleted or deactivated while the campaign is created.
SELECT id, status, greeting, sip_uri FROM agents
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
FOR SHARE;

-- name: lock_phone_number
SELECT id, outbound_enabled FROM phone_numbers
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
FOR SHARE;

-- name: insert
-- $14: the prefix of its contacts' ids (contact_id() in 0005); $15, $16: its calling window
-- (NULL: the account's) and retry policy, canonical JSON checked at the edge.
INSERT INTO campaigns (id, account_id, name, agent_id, phone_number_id, status,
                       max_concurrent_calls, retries_per_contact, retry_delay_seconds,
                       scheduled_at, contacts_total, rows_rejected, created_by,
                       contact_id_prefix, calling_window, retry_policy)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING *;

-- name: get
SELECT * FROM campaigns WHERE id = $1 AND account_id = $2;

-- name: get_with_counts
-- The campaign and its contacts by status (contact_counts, kept by triggers): one round trip.
-- Those waiting for their window are counted from the same rows, by zone (0008).
SELECT cp.*,
       campaign_contact_counts(cp.id) AS contact_counts,
       campaign_waiting_for_window(cp.id, $3) AS waiting_for_window
FROM campaigns cp WHERE cp.id = $1 AND cp.account_id = $2;

-- name: waiting_for_window
-- (At $2, the engine's clock: the one the claim compares with the windows.)
SELECT campaign_waiting_for_window($1, $2);

-- name: page
SELECT cp.*,
       campaign_contact_counts(cp.id) AS contact_counts,
       campaign_waiting_for_window(cp.id, $5) AS waiting_for_window
FROM campaigns cp
WHERE cp.account_id = $1 AND ($2::text IS NULL OR cp.status = $2)
ORDER BY cp.created_at DESC, cp.id
LIMIT $3 OFFSET $4;

-- name: count
SELECT count(*) FROM campaigns WHERE account_id = $1 AND ($2::text IS NULL OR status = $2);

-- name: status_for_update
SELECT status FROM campaigns WHERE id = $1 AND account_id = $2 FOR UPDATE;

-- name: delete
DELETE FROM campaigns WHERE id = $1;

-- name: set_totals
-- After the contacts' COPY ($2: the rows it wrote, all pending): the campaign's totals, the
-- names of its contacts' custom fields ($4, from the CSV header) and its contacts' counts,
-- a row per zone ($5: the zone numbers, $6: the contacts of each, as the import counted
-- them; they add up to $2). No trigger counts inserted contacts (0005): the COPY is the
-- only statement that inserts them.
WITH counted AS (
    INSERT INTO contact_counts (campaign_id, status, zone, n)
    SELECT $1, 'pending', zone, n FROM unnest($5::smallint[], $6::bigint[]) AS c (zone, n)
    WHERE n > 0
)
UPDATE campaigns SET contacts_total = $2, rows_rejected = $3, custom_field_names = $4
WHERE id = $1
RETURNING *;

-- Contact pages of campaign $1. A contact's id and its fields as the API shows them are
-- computed from its row and its campaign's contact_id_prefix and custom_field_names (0005),
-- for the page's rows only: the page is chosen from contacts alone (the inner query), so
-- the plan is the one a single-table query gets. Joined to campaigns instead, a campaign
-- imported moments ago (no statistics yet: the planner expects 2 rows) was read whole
-- and sorted, 85 ms for 100k contacts instead of 1 ms.

-- name: contacts_range
-- Unfiltered pages: seq is dense, so a page is one index range.
SELECT coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)) AS id,
       contact_fields(cp.custom_field_names, c.custom_fields) AS custom_fields,
       c.row_number, c.phone_number, c.status, c.attempts, c.last_outcome,
       c.last_attempt_at, c.next_attempt_at, c.disposition
FROM (SELECT * FROM contacts
      WHERE campaign_id = $1 AND seq >= $2 AND seq < $3
      ORDER BY seq) AS c,
     (SELECT contact_id_prefix, custom_field_names FROM campaigns WHERE id = $1) AS cp
ORDER BY c.seq;

-- name: contacts_by_status
-- Any status but pending: contacts_campaign_status (its predicate repeated, see 0004).
SELECT coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)) AS id,
       contact_fields(cp.custom_field_names, c.custom_fields) AS custom_fields,
       c.row_number, c.phone_number, c.status, c.attempts, c.last_outcome,
       c.last_attempt_at, c.next_attempt_at, c.disposition
FROM (SELECT * FROM contacts
      WHERE campaign_id = $1 AND status = $2 AND status <> 'pending'
      ORDER BY seq
      LIMIT $3 OFFSET $4) AS c,
     (SELECT contact_id_prefix, custom_field_names FROM campaigns WHERE id = $1) AS cp
ORDER BY c.seq;

-- name: pending_contacts
-- Pending contacts are not in the status index (0004): the campaign's key, in seq order.
SELECT coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)) AS id,
       contact_fields(cp.custom_field_names, c.custom_fields) AS custom_fields,
       c.row_number, c.phone_number, c.status, c.attempts, c.last_outcome,
       c.last_attempt_at, c.next_attempt_at, c.disposition
FROM (SELECT * FROM contacts
      WHERE campaign_id = $1 AND status = 'pending'
      ORDER BY seq
      LIMIT $2 OFFSET $3) AS c,
     (SELECT contact_id_prefix, custom_field_names FROM campaigns WHERE id = $1) AS cp
ORDER BY c.seq;

-- name: count_contacts_by_status
-- (One row per zone of the campaign: 0008.)
SELECT coalesce((SELECT sum(n) FROM contact_counts WHERE campaign_id = $1 AND status = $2),
                0)::bigint;

-- name: import_dnc_keys
-- The account's do-not-call numbers as the import compares them: the digits after "+".
SELECT coalesce(array_agg(substr(number, 2)::int8), '{}') FROM dnc_numbers
WHERE account_id = $1;

-- name: known_zones
-- The zone names a contact's timezone cell may hold: the ones AT TIME ZONE takes by name.
SELECT array_agg(name ORDER BY name) FROM pg_timezone_names;

-- name: insert_zones
-- The campaign's sets of zones, after its contacts' COPY: $2 the import's zone numbers,
-- $3 the names of each joined by commas (no zone name has one).
INSERT INTO campaign_zones (campaign_id, zone, names)
SELECT $1, zone, string_to_array(names, ',')
FROM unnest($2::smallint[], $3::text[]) AS z (zone, names);
