-- Reruns: a new draft campaign from some of a finished campaign's contacts, copied inside
-- the database (no contact goes through the gateway).

-- name: lock_source
-- FOR SHARE: the source cannot change or be deleted while it is copied.
SELECT * FROM campaigns WHERE id = $1 AND account_id = $2 FOR SHARE;

-- name: insert_campaign
-- Campaign $1, a draft named $3 with the settings of campaign $2 (not its schedule, state
-- or counts), created by API key $4; $5: the prefix of its contacts' ids (0005).
INSERT INTO campaigns (id, account_id, name, agent_id, phone_number_id, status,
                       max_concurrent_calls, retries_per_contact, retry_delay_seconds,
                       scheduled_at, contacts_total, rows_rejected, created_by,
                       contact_id_prefix, custom_field_names, calling_window, retry_policy)
SELECT $1, account_id, $3, agent_id, phone_number_id, 'draft', max_concurrent_calls,
       retries_per_contact, retry_delay_seconds, NULL, 0, 0, $4, $5, custom_field_names,
       calling_window, retry_policy
FROM campaigns WHERE id = $2;

-- name: copy_zones
-- The source's sets of zones, numbered as they are: the copied contacts keep their zone.
INSERT INTO campaign_zones (campaign_id, zone, names)
SELECT $1, zone, names FROM campaign_zones WHERE campaign_id = $2;

-- name: copy_contacts
-- Into campaign $1, the contacts of campaign $2 whose status is one of $4, as the import
-- writes them (pending, never dialed; seq dense again, in the source's order; their CSV
-- row, number, zone and custom fields kept), except the numbers on account $3's
-- do-not-call list now, as an import rejects them. One statement: a 100k-contact rerun
-- is one pass over the source's key range. Then the new contacts' counts by zone (no
-- trigger counts inserted contacts: 0005), one row each: the number copied is their sum.
WITH copied AS (
    INSERT INTO contacts (campaign_id, zone, seq, row_number, phone_number, custom_fields)
    SELECT $1, c.zone, (row_number() OVER (ORDER BY c.seq) - 1)::integer, c.row_number,
           c.phone_number, c.custom_fields
    FROM contacts c
    WHERE c.campaign_id = $2 AND c.status = ANY ($4::text[])
      AND NOT EXISTS (SELECT 1 FROM dnc_numbers d
                      WHERE d.account_id = $3 AND d.number = c.phone_number)
    RETURNING zone
)
INSERT INTO contact_counts (campaign_id, status, zone, n)
SELECT $1, 'pending', zone, count(*) FROM copied GROUP BY zone ORDER BY zone
RETURNING n;

-- name: count_matching
-- The contacts of campaign $1 whose status is one of $2, listed numbers included.
SELECT coalesce(sum(n), 0)::bigint FROM contact_counts
WHERE campaign_id = $1 AND status = ANY ($2::text[]);

-- name: set_total
UPDATE campaigns SET contacts_total = $2 WHERE id = $1;
