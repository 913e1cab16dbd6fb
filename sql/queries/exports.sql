-- Exports: every contact or call attempt of a campaign, read a chunk at a time by keyset:
-- each chunk starts where the one before ended on the rows' order key (never OFFSET), so a
-- chunk is one index range however deep it starts, and no query holds a connection longer
-- than one chunk.
--
-- The fields are the pages' (campaigns.sql: contacts_range, calls.sql: page), in the same
-- order, then the keyset cursor. Ids and times come as text, written as the API's JSON
-- writes them (api_time, 0013: ISO 8601 in UTC with "Z", the fraction only when it is not
-- zero), so a CSV cell or a JSON line holds the pages' very text and Python converts nothing.
-- A contact's custom_fields come as the JSON text of its array of values, in the order of
-- the campaign's custom_field_names (0005): the chunk's arrays are decoded in one call.

-- name: campaign
-- Campaign $1 if account $2 owns it: its contacts' custom field names and their count.
SELECT custom_field_names, contacts_total FROM campaigns WHERE id = $1 AND account_id = $2;

-- name: campaign_exists
-- Read when an export has read its last chunk: a campaign deleted meanwhile (a draft)
-- ends the export as cut, not as complete.
SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1);

-- name: contacts
-- Contacts of campaign $1 with seq in [$2, $3): seq is dense (0 to contacts_total - 1), so
-- a chunk is one range of the campaign's key, whatever plan the planner picks.
SELECT coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq))::text AS id,
       c.row_number, c.phone_number, c.custom_fields::text AS custom_fields, c.status,
       c.attempts, c.last_outcome,
       api_time(c.last_attempt_at) AS last_attempt_at,
       api_time(c.next_attempt_at) AS next_attempt_at,
       c.disposition, c.seq
FROM (SELECT * FROM contacts
      WHERE campaign_id = $1 AND seq >= $2 AND seq < $3) AS c,
     (SELECT contact_id_prefix FROM campaigns WHERE id = $1) AS cp
ORDER BY c.seq;

-- name: contacts_by_status
-- Contacts of campaign $1 of status $2 (any but pending) after seq $3, at most $4:
-- contacts_campaign_status (its predicate repeated, see 0004).
SELECT coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq))::text AS id,
       c.row_number, c.phone_number, c.custom_fields::text AS custom_fields, c.status,
       c.attempts, c.last_outcome,
       api_time(c.last_attempt_at) AS last_attempt_at,
       api_time(c.next_attempt_at) AS next_attempt_at,
       c.disposition, c.seq
FROM (SELECT * FROM contacts
      WHERE campaign_id = $1 AND status = $2 AND status <> 'pending' AND seq > $3
      ORDER BY seq
      LIMIT $4) AS c,
     (SELECT contact_id_prefix FROM campaigns WHERE id = $1) AS cp
ORDER BY c.seq;

-- name: pending_contacts
-- Pending contacts of campaign $1 with seq in [$2, $3): they are not in the status index
-- (0004), so a chunk is a range of the campaign's key as for all contacts, and the chunks
-- walk the key once in all (a chunk may hold fewer rows than its range, or none). With
-- "seq > $2 ... LIMIT" instead, a campaign imported moments ago (no statistics yet) had
-- each chunk planned as a bitmap read of the rest of the campaign and a sort.
SELECT coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq))::text AS id,
       c.row_number, c.phone_number, c.custom_fields::text AS custom_fields, c.status,
       c.attempts, c.last_outcome,
       api_time(c.last_attempt_at) AS last_attempt_at,
       api_time(c.next_attempt_at) AS next_attempt_at,
       c.disposition, c.seq
FROM (SELECT * FROM contacts
      WHERE campaign_id = $1 AND status = 'pending' AND seq >= $2 AND seq < $3) AS c,
     (SELECT contact_id_prefix FROM campaigns WHERE id = $1) AS cp
ORDER BY c.seq;

-- name: calls
-- Attempts of campaign $1 after ($2, $3) in the page's order (dialed_at, id), at most $4;
-- $2 and $3 NULL for the first chunk; $5: only this outcome (NULL: every attempt, live
-- ones included). attempts_campaign (campaign_id, dialed_at, id) serves the range; the
-- outcome is a filter on it, so a filtered export reads the campaign's attempts once.
SELECT a.id::text AS id, a.contact_id::text AS contact_id, a.phone_number, a.attempt,
       a.outcome,
       api_time(a.dialed_at) AS dialed_at,
       api_time(a.answered_at) AS answered_at,
       api_time(a.connected_at) AS connected_at,
       api_time(a.ended_at) AS ended_at,
       a.duration_seconds, a.hangup_by, a.sip_call_id, a.sip_status, a.agent_sip_status,
       a.agent_sip_call_id, a.disposition,
       api_time(a.callback_at) AS callback_at,
       a.disposition_notes, a.dialed_at AS after_dialed_at, a.id AS after_id
FROM attempts a
WHERE a.campaign_id = $1
  AND (a.dialed_at, a.id) > (coalesce($2::timestamptz, '-infinity'),
                             coalesce($3::uuid, '00000000-0000-0000-0000-000000000000'))
  AND ($5::text IS NULL OR a.outcome = $5)
ORDER BY a.dialed_at, a.id
LIMIT $4;
