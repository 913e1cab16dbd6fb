-- name: page
SELECT id, contact_id, phone_number, attempt, outcome, dialed_at, answered_at, connected_at,
       ended_at, duration_seconds, hangup_by, sip_call_id, sip_status, agent_sip_status,
       agent_sip_call_id, disposition, callback_at, disposition_notes
FROM attempts
WHERE campaign_id = $1
ORDER BY dialed_at, id
LIMIT $2 OFFSET $3;

-- name: count
-- Every attempt of campaign $1, from the counts the attempts triggers keep (0003).
SELECT coalesce((SELECT n FROM attempt_counts WHERE campaign_id = $1 AND kind = 'dialed'), 0);

-- name: lock_for_disposition
-- Call $1 of account $2, locked before anything is decided on it: the recorder writes
-- the same row when the call ends, so one of the two waits for the other and the second
-- sees what the first wrote (a live call's result, or the disposition). The campaign row
-- is share-locked too, so a stop cannot commit between the reading of its status here
-- and the contact's new status (a retry of a stopped campaign would wait forever); a
-- share lock does not conflict with the key-share lock that a claim's attempt insert
-- takes on it.
SELECT a.id, a.campaign_id, a.phone_number, a.outcome, a.ended_at, a.disposition
FROM attempts a JOIN campaigns cp ON cp.id = a.campaign_id
WHERE a.id = $1 AND a.account_id = $2
FOR UPDATE OF a
FOR SHARE OF cp;

-- name: set_disposition
-- Give call $1 disposition $2 (callback_at $3, notes $4) at $5; the call as the API
-- shows it.
UPDATE attempts
SET disposition = $2, callback_at = $3, disposition_notes = $4, disposition_at = $5
WHERE id = $1
RETURNING id, contact_id, phone_number, attempt, outcome, dialed_at, answered_at,
          connected_at, ended_at, duration_seconds, hangup_by, sip_call_id, sip_status,
          agent_sip_status, agent_sip_call_id, disposition, callback_at, disposition_notes;

-- name: decide_contact
-- A disposition given after call $1's result was recorded: its contact is decided again,
-- as the recorder would have decided it, if this call is the contact's latest attempt.
-- A completed contact is retried for a voicemail (while the campaign's retry_policy
-- allows: else it fails) or a callback (up to $2 attempts in all), when the campaign can
-- still dial (running or paused); the retry is due at callback_at, or the voicemail
-- delay after the call ended, at the first time the contact's window is open from then.
-- The contact shows the disposition whatever its status. The contact's status is read
-- in the UPDATE (on the row it locks), not from a snapshot taken before. A completed
-- contact that fails here (a voicemail with no attempt left) has finished again, as
-- failed: its contact.finished webhook event is written again, with what it is now.
WITH call AS (
    SELECT a.campaign_id, a.account_id, a.contact_seq, a.attempt, a.disposition,
           cp.status IN ('running', 'paused') AND CASE a.disposition
               WHEN 'voicemail' THEN a.attempt < retry_max_attempts(
                   cp.retry_policy, 'voicemail', cp.retries_per_contact)
               WHEN 'callback' THEN a.attempt < $2
               ELSE false END AS retry,
           a.disposition = 'voicemail' AS give_up,
           CASE a.disposition
               WHEN 'voicemail' THEN a.ended_at + make_interval(secs => retry_delay_seconds(
                   cp.retry_policy, 'voicemail', cp.retry_delay_seconds))
               WHEN 'callback' THEN greatest(a.callback_at, a.ended_at) END AS due
    FROM attempts a JOIN campaigns cp ON cp.id = a.campaign_id
    WHERE a.id = $1
), decided AS (
    UPDATE contacts c
    SET disposition = call.disposition, updated_at = now(),
        status = CASE WHEN c.status <> 'completed' THEN c.status
                      WHEN call.retry THEN 'retry_pending'
                      WHEN call.give_up THEN 'failed'
                      ELSE c.status END,
        next_attempt_at = CASE WHEN c.status = 'completed' AND call.retry THEN coalesce(
            window_next_open(campaign_window(c.campaign_id),
                             (SELECT z.names FROM campaign_zones z
                              WHERE z.campaign_id = c.campaign_id AND z.zone = c.zone),
                             call.due),
            call.due) ELSE c.next_attempt_at END
    FROM call
    WHERE c.campaign_id = call.campaign_id AND c.seq = call.contact_seq
      AND c.attempts = call.attempt
    RETURNING c.status, c AS contact, call.give_up AND NOT call.retry AS gave_up
), emitted AS (
    INSERT INTO webhook_deliveries (endpoint_id, event_id, campaign_id, type, payload)
    SELECT e.id, ev.event_id, cp.id, 'contact.finished',
           webhook_payload('contact.finished', webhook_contact(ev.contact,
                                                               cp.contact_id_prefix,
                                                               cp.custom_field_names))
    FROM (SELECT decided.contact, gen_random_uuid() AS event_id FROM decided, call
          WHERE decided.gave_up AND decided.status = 'failed'
            AND (SELECT was.status FROM contacts was
                 WHERE was.campaign_id = call.campaign_id
                   AND was.seq = call.contact_seq) = 'completed') AS ev
    JOIN call ON true
    JOIN campaigns cp ON cp.id = call.campaign_id
    JOIN webhook_endpoints e ON e.account_id = call.account_id AND e.disabled_at IS NULL
                            AND 'contact.finished' = ANY(e.events)
)
SELECT status FROM decided;

-- name: notify
-- Tell the process dialing campaign $1 (its actor may have a retry to claim now).
SELECT pg_notify('gateway', 'campaign ' || $1::uuid);
