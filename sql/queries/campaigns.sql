-- name: lock_agent
-- FOR SHARE: the agent cannot be deleted or deactivated while the campaign is created.
SELECT id, status, greeting FROM agents
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
FOR SHARE;

-- name: lock_phone_number
SELECT id, outbound_enabled FROM phone_numbers
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
FOR SHARE;

-- name: insert
INSERT INTO campaigns (id, account_id, name, agent_id, phone_number_id, status,
                       max_concurrent_calls, retries_per_contact, retry_delay_seconds,
                       scheduled_at, contacts_total, rows_rejected, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING *;

-- name: get
SELECT * FROM campaigns WHERE id = $1 AND account_id = $2;

-- name: get_with_counts
-- The campaign and its contacts by status (contact_counts, kept by triggers): one round trip.
SELECT cp.*,
       campaign_contact_counts(cp.id) AS contact_counts
FROM campaigns cp WHERE cp.id = $1 AND cp.account_id = $2;

-- name: page
SELECT cp.*,
       campaign_contact_counts(cp.id) AS contact_counts
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

-- name: import_memory
-- For the import transaction only: the contact_counts trigger collects every new contact
-- (~25 MB for 100k) before it counts them; in memory instead of a temporary file.
SET LOCAL work_mem = '64MB';

-- name: set_totals
-- After the contacts' COPY: how many rows were accepted and rejected.
UPDATE campaigns SET contacts_total = $2, rows_rejected = $3 WHERE id = $1
RETURNING *;

-- name: contacts_range
-- Unfiltered pages: seq is dense, so a page is one index range.
SELECT * FROM contacts
WHERE campaign_id = $1 AND seq >= $2 AND seq < $3
ORDER BY seq;

-- name: contacts_by_status
-- Any status but pending: contacts_campaign_status (its predicate repeated, see 0004).
SELECT * FROM contacts
WHERE campaign_id = $1 AND status = $2 AND status <> 'pending'
ORDER BY seq
LIMIT $3 OFFSET $4;

-- name: pending_contacts
-- Pending contacts are not in the status index (0004): the campaign's key, in seq order.
SELECT * FROM contacts
WHERE campaign_id = $1 AND status = 'pending'
ORDER BY seq
LIMIT $2 OFFSET $3;

-- name: count_contacts_by_status
SELECT coalesce((SELECT n FROM contact_counts WHERE campaign_id = $1 AND status = $2), 0);
