-- The dial loop's statements. Times ($2 "now") come from the engine's clock.

-- name: claim
-- Claim up to $3 due contacts of running campaign $1 in one statement: due retries first,
-- then new contacts in import order with seqs in [$4, $4 + $5). Each claimed contact
-- becomes in_progress with its attempt row written, before any dial. SKIP LOCKED + the
-- status change make a second claim of the same contact impossible; the attempt cap is
-- checked here and by the (campaign_id, contact_seq, attempt) key. $6 and $7 are the
-- claimer's process and its lease epoch on the campaign's account (leases.sql): nothing
-- is claimed under a lease that is not that one or has expired (fencing: another process
-- may hold the account now), and the attempts record both.
-- Compliance (0008): only contacts inside their calling window at $2 are taken (the zones
-- open now are computed here, once per claim); a contact whose number is on the
-- account's do-not-call list is not dialed but skipped (last_outcome do_not_call), and
-- returned with a NULL attempt_id so the caller knows the claim found it.
WITH campaign AS (
    -- Nothing is claimed unless the campaign runs with an active agent and an enabled
    -- number, so a deactivation stops dialing at once, not at the actor's next check.
    SELECT cp.id, cp.account_id, cp.contact_id_prefix, cp.attempts_max,
           coalesce(cp.calling_window, ac.calling_window) AS win
    FROM campaigns cp
    JOIN accounts ac ON ac.id = cp.account_id
    JOIN agents ag ON ag.id = cp.agent_id AND ag.status = 'active' AND ag.deleted_at IS NULL
    JOIN phone_numbers pn ON pn.id = cp.phone_number_id
         AND pn.outbound_enabled AND pn.deleted_at IS NULL
    WHERE cp.id = $1 AND cp.status = 'running'
      AND EXISTS (SELECT 1 FROM account_leases l
                  WHERE l.account_id = cp.account_id AND l.owner = $6 AND l.epoch = $7
                    AND l.expires_at > now())
), gate AS (
    -- Which contacts' zones are inside the window now (all of them without a window): the
    -- window open in every zone of the zone set (window_open, spelled out to be inlined).
    SELECT campaign.win IS NULL AS open_all,
           ARRAY(SELECT z.zone FROM campaign_zones z
                 WHERE z.campaign_id = $1 AND campaign.win IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM unnest(z.names) AS name
                                   WHERE NOT window_open_in(campaign.win, name, $2)))
               AS zones
    FROM campaign
), retries AS (
    -- campaign_id = $1 (not a join) lets the planner walk the indexes in order and stop
    -- at the limit, instead of sorting every pending contact. A callback the agent asked
    -- for may go past the policy's attempts, never past 6.
    SELECT c.campaign_id, c.seq, c.phone_number FROM contacts c
    WHERE c.campaign_id = $1 AND c.status = 'retry_pending' AND c.next_attempt_at <= $2
      AND c.attempts < CASE WHEN c.disposition = 'callback' THEN 6
                            ELSE (SELECT attempts_max FROM campaign) END
      AND ((SELECT open_all FROM gate) OR c.zone = ANY((SELECT zones FROM gate)::smallint[]))
    ORDER BY c.next_attempt_at
    LIMIT $3
    FOR UPDATE OF c SKIP LOCKED
), fresh AS (
    -- From seq $4 (the actor's cursor past the contacts it already claimed) to at most
    -- $5 seqs further, on the primary key: pending contacts are not in the status index
    -- (0004), and the window bounds the plan whatever it is, also one that would sort.
    SELECT c.campaign_id, c.seq, c.phone_number FROM contacts c
    WHERE c.campaign_id = $1 AND c.seq >= $4 AND c.seq < $4 + $5 AND c.status = 'pending'
      AND ((SELECT open_all FROM gate) OR c.zone = ANY((SELECT zones FROM gate)::smallint[]))
    ORDER BY c.seq
    -- A plain LIMIT; the retries taken are subtracted in `due`.
    LIMIT $3
    FOR UPDATE OF c SKIP LOCKED
), due AS MATERIALIZED (  -- see claimed
    SELECT d.campaign_id, d.seq, EXISTS (SELECT 1 FROM dnc_numbers n
                          WHERE n.account_id = (SELECT account_id FROM campaign)
                            AND n.number = d.phone_number) AS blocked
    FROM (SELECT campaign_id, seq, phone_number FROM retries
          UNION ALL
          (SELECT campaign_id, seq, phone_number FROM fresh
           LIMIT $3 - (SELECT count(*) FROM retries)))
         AS d
), claimed AS (
    UPDATE contacts c
    SET status = CASE WHEN due.blocked THEN 'skipped' ELSE 'in_progress' END,
        attempts = c.attempts + CASE WHEN due.blocked THEN 0 ELSE 1 END,
        last_attempt_at = CASE WHEN due.blocked THEN c.last_attempt_at ELSE $2 END,
        last_outcome = CASE WHEN due.blocked THEN 'do_not_call' ELSE c.last_outcome END,
        next_attempt_at = NULL, updated_at = now()
    FROM due
    -- Joined on both key columns of `due` (materialized: opaque to the planner), so each
    -- claimed contact is one primary-key lookup whatever the statistics say. With
    -- campaign_id = $1 here, a campaign imported since contacts was last analyzed was
    -- estimated at one row and read whole for each claim, for a nested loop over `due`:
    -- 1.7 s a claim at 100k contacts, 83 calls/s instead of ~6,000.
    WHERE c.campaign_id = due.campaign_id AND c.seq = due.seq
    RETURNING c.id, c.seq, c.phone_number, c.custom_fields, c.attempts, due.blocked
), named AS (
    -- The contact's id as the API shows it (0005). Its custom_fields stay the array of
    -- values: the store names them with the campaign's custom_field_names, off the
    -- database's CPU, which bounds the dial rate.
    SELECT coalesce(claimed.id, contact_id(campaign.contact_id_prefix, claimed.seq)) AS id,
           claimed.custom_fields, claimed.seq, claimed.phone_number, claimed.attempts,
           claimed.blocked
    FROM claimed, campaign
), inserted AS (
    INSERT INTO attempts (account_id, campaign_id, contact_id, contact_seq, attempt,
                          phone_number, dialed_at, owner, lease_epoch)
    SELECT campaign.account_id, campaign.id, named.id, named.seq, named.attempts,
           named.phone_number, $2, $6, $7
    FROM named, campaign
    WHERE NOT named.blocked
    RETURNING id, contact_seq, attempt
)
SELECT i.id AS attempt_id, c.id AS contact_id, c.seq, c.attempts AS attempt,
       c.phone_number, c.custom_fields
FROM named c LEFT JOIN inserted i ON i.contact_seq = c.seq;

-- name: record_results
-- Finish a batch of attempts (parallel arrays $1..$14) and decide each one's contact.
-- The attempt keeps a disposition already given through the API over the one its result
-- brings (the agent's BYE). The decision, by the call's kind (its outcome, or voicemail
-- for an answered call the agent marked so) and the campaign's retry_policy (0008):
-- a callback the agent asked for is retried at callback_at (up to 6 attempts); an
-- answered call is completed; a retryable kind ($15, and voicemail) is retried while the
-- policy's attempts remain and the campaign can still dial (running or paused), after
-- the policy's delay, at the first time the contact's window is open; else failed.
-- A do_not_call disposition puts the number on the account's list. An attempt already
-- finished is left alone.
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                         $5::float8[], $6::text[], $7::int[], $8::timestamptz[],
                         $9::text[], $10::int[], $11::text[], $12::text[],
                         $13::timestamptz[], $14::text[])
        AS i(id, outcome, answered_at, ended_at, duration_seconds, sip_call_id, sip_status,
             connected_at, hangup_by, agent_sip_status, agent_sip_call_id, disposition,
             callback_at, disposition_notes)
), attempt AS (
    UPDATE attempts a
    SET outcome = i.outcome, answered_at = i.answered_at, ended_at = i.ended_at,
        duration_seconds = i.duration_seconds, sip_call_id = i.sip_call_id,
        sip_status = i.sip_status, connected_at = i.connected_at, hangup_by = i.hangup_by,
        agent_sip_status = i.agent_sip_status, agent_sip_call_id = i.agent_sip_call_id,
        disposition = coalesce(a.disposition, i.disposition),
        callback_at = CASE WHEN a.disposition IS NULL THEN i.callback_at ELSE a.callback_at END,
        disposition_notes = CASE WHEN a.disposition IS NULL THEN i.disposition_notes
                                 ELSE a.disposition_notes END,
        disposition_at = CASE WHEN a.disposition IS NULL AND i.disposition IS NOT NULL
                              THEN i.ended_at ELSE a.disposition_at END
    FROM input i
    WHERE a.id = i.id AND a.outcome IS NULL
    RETURNING a.id, a.account_id, a.campaign_id, a.contact_seq, a.attempt, a.outcome,
              a.ended_at, a.phone_number, a.disposition, a.callback_at, a AS call
), listed AS (
    INSERT INTO dnc_numbers (account_id, number, source)
    SELECT DISTINCT account_id, phone_number, 'disposition' FROM attempt
    WHERE disposition = 'do_not_call'
    ON CONFLICT DO NOTHING
), kinds AS (
    SELECT a.*, cp.status AS campaign_status, cp.retry_policy, cp.retries_per_contact,
           cp.retry_delay_seconds, coalesce(cp.calling_window, ac.calling_window) AS win,
           CASE WHEN a.outcome = 'answered' AND a.disposition = 'voicemail' THEN 'voicemail'
                ELSE a.outcome END AS kind
    FROM attempt a
    JOIN campaigns cp ON cp.id = a.campaign_id
    JOIN accounts ac ON ac.id = cp.account_id
), decision AS (
    SELECT k.id AS attempt_id, k.campaign_id, k.contact_seq, k.outcome, k.disposition,
           k.win,
           CASE WHEN k.status = 'retry_pending' AND k.kind = 'answered'
                THEN greatest(k.callback_at, k.ended_at)
                ELSE k.ended_at + make_interval(secs => retry_delay_seconds(
                         k.retry_policy, k.kind, k.retry_delay_seconds)) END AS due_at,
           k.status
    FROM (SELECT kinds.*,
                 CASE WHEN kinds.campaign_status NOT IN ('running', 'paused')
                      THEN CASE WHEN kinds.kind = 'answered' THEN 'completed'
                                ELSE 'failed' END
                      WHEN kinds.kind = 'answered' AND kinds.disposition = 'callback'
                           AND kinds.callback_at IS NOT NULL AND kinds.attempt < 6
                      THEN 'retry_pending'
                      WHEN kinds.kind = 'answered' THEN 'completed'
                      WHEN (kinds.kind = ANY($15::text[]) OR kinds.kind = 'voicemail')
                           AND kinds.attempt < retry_max_attempts(
                               kinds.retry_policy, kinds.kind, kinds.retries_per_contact)
                      THEN 'retry_pending'
                      ELSE 'failed' END AS status
          FROM kinds) AS k
), decided AS (
    UPDATE contacts c
    SET status = d.status, last_outcome = d.outcome, disposition = d.disposition,
        updated_at = now(),
        next_attempt_at = CASE WHEN d.status <> 'retry_pending' THEN NULL
                               WHEN d.win IS NULL THEN d.due_at
                               ELSE coalesce(window_next_open(d.win,
                                        (SELECT z.names FROM campaign_zones z
                                         WHERE z.campaign_id = c.campaign_id
                                           AND z.zone = c.zone),
                                        d.due_at), d.due_at) END
    FROM decision d
    WHERE c.campaign_id = d.campaign_id AND c.seq = d.contact_seq AND c.status = 'in_progress'
    RETURNING d.attempt_id, c.status, c AS contact
), emitted AS (
    -- The webhook events of the batch, in the transaction that records it (0009):
    -- call.ended for every call, then contact.finished for a contact it decided.
    INSERT INTO webhook_deliveries (endpoint_id, event_id, campaign_id, type, payload)
    SELECT e.id, ev.event_id, ev.campaign_id, ev.type,
           webhook_payload(ev.type, CASE WHEN ev.ord = 1 THEN webhook_call(a.call)
                                         ELSE webhook_contact(d.contact, cp.contact_id_prefix,
                                                              cp.custom_field_names) END)
    FROM (SELECT events.*, gen_random_uuid() AS event_id FROM (
              SELECT a.id AS attempt_id, 1 AS ord, 'call.ended' AS type, a.account_id,
                     a.campaign_id, a.ended_at
              FROM attempt a
              UNION ALL
              SELECT a.id, 2, 'contact.finished', a.account_id, a.campaign_id, a.ended_at
              FROM decided d JOIN attempt a ON a.id = d.attempt_id
              WHERE d.status IN ('completed', 'failed')) AS events
          WHERE EXISTS (SELECT 1 FROM webhook_endpoints e
                        WHERE e.account_id = events.account_id)) AS ev
    JOIN webhook_endpoints e ON e.account_id = ev.account_id AND e.disabled_at IS NULL
                            AND ev.type = ANY(e.events)
    JOIN attempt a ON a.id = ev.attempt_id
    LEFT JOIN decided d ON d.attempt_id = ev.attempt_id AND ev.ord = 2
    JOIN campaigns cp ON cp.id = ev.campaign_id
    ORDER BY ev.ended_at, ev.attempt_id, ev.ord, e.id
)
SELECT attempt_id, status FROM decided;

-- name: progress
-- What is left of campaign $1 at $2, and its status (the actor stops when it is not
-- running). The counts come from contact_counts (kept by triggers), the next retry from
-- its index: the first one still to come (a retry due but outside its window waits for
-- the window, which next_window_at gives: the first opening of a zone that has contacts
-- waiting). waiting: the contacts due but outside their window (the new ones among them
-- are waiting_pending).
SELECT cp.status,
       coalesce(sum(cc.n) FILTER (WHERE cc.status = 'pending'), 0)::bigint AS pending,
       coalesce(sum(cc.n) FILTER (WHERE cc.status = 'retry_pending'), 0)::bigint AS retry_pending,
       coalesce(sum(cc.n) FILTER (WHERE cc.status = 'in_progress'), 0)::bigint AS in_progress,
       (SELECT min(next_attempt_at) FROM contacts
        WHERE campaign_id = cp.id AND status = 'retry_pending' AND next_attempt_at > $2)
           AS next_retry_at,
       campaign_next_window_open(cp.id, $2) AS next_window_at,
       coalesce(sum(cc.n) FILTER (WHERE cc.status = 'pending' AND NOT window_open(
           w.win, z.names, $2)), 0)::bigint AS waiting_pending
FROM campaigns cp
CROSS JOIN (SELECT campaign_window($1) AS win) AS w  -- read once, not per count row
LEFT JOIN contact_counts cc ON cc.campaign_id = cp.id
LEFT JOIN campaign_zones z ON z.campaign_id = cc.campaign_id AND z.zone = cc.zone
WHERE cp.id = $1
GROUP BY cp.id;

-- name: complete
UPDATE campaigns SET status = 'completed', completed_at = $2, updated_at = now()
WHERE id = $1 AND status = 'running'
  AND NOT EXISTS (SELECT 1 FROM contact_counts
                  WHERE campaign_id = $1 AND n > 0
                    AND status IN ('pending', 'retry_pending', 'in_progress'))
RETURNING id;

-- name: references
-- Can campaign $1 still dial: its agent active and its number enabled (neither deleted)?
-- The agent's name and sip_uri name it in a failure_reason.
-- windowed: a calling window applies (the campaign's or its account's).
SELECT ag.id AS agent_id, ag.status = 'active' AND ag.deleted_at IS NULL AS agent_ok,
       ag.name AS agent_name, ag.sip_uri AS agent_sip_uri,
       pn.number AS from_number, pn.outbound_enabled AND pn.deleted_at IS NULL AS number_ok,
       campaign_window(cp.id) IS NOT NULL AS windowed
FROM campaigns cp
JOIN agents ag ON ag.id = cp.agent_id
JOIN phone_numbers pn ON pn.id = cp.phone_number_id
WHERE cp.id = $1;

-- name: campaign
-- With its agent and the agent's cap: the budget shares the agent's seats between the
-- campaigns that use it.
SELECT cp.id, cp.account_id, cp.status, cp.max_concurrent_calls, cp.retries_per_contact,
       cp.retry_delay_seconds, cp.contacts_total, cp.custom_field_names, cp.agent_id,
       ag.max_concurrent_calls AS agent_max_concurrent_calls
FROM campaigns cp JOIN agents ag ON ag.id = cp.agent_id
WHERE cp.id = $1;

-- name: agent_caps
-- The caps of the agents of campaigns $1 (the running ones: a refresh of the budget).
SELECT DISTINCT ag.id, ag.max_concurrent_calls
FROM campaigns cp JOIN agents ag ON ag.id = cp.agent_id
WHERE cp.id = ANY($1::uuid[]);

-- name: running
-- The running campaigns of accounts $1 (those this process holds leases on).
SELECT id, account_id FROM campaigns WHERE status = 'running' AND account_id = ANY($1::uuid[]);

-- name: due_scheduled
-- The scheduled campaigns of accounts $2 whose time has come by $1.
SELECT id, account_id FROM campaigns
WHERE status = 'scheduled' AND scheduled_at <= $1 AND account_id = ANY($2::uuid[])
ORDER BY scheduled_at, id;

-- name: caps
-- Caps of accounts $1, with today's (UTC) dials and talk seconds when a daily cap needs them.
SELECT a.id, a.concurrent_max, a.calls_per_minute, a.daily_calls_max, a.daily_minutes_max,
       CASE WHEN a.daily_calls_max IS NOT NULL OR a.daily_minutes_max IS NOT NULL THEN
           (SELECT count(*) FROM attempts t
            WHERE t.account_id = a.id AND t.dialed_at >= date_trunc('day', $2::timestamptz, 'UTC'))
       END AS dials_today,
       CASE WHEN a.daily_minutes_max IS NOT NULL THEN
           (SELECT coalesce(sum(t.duration_seconds), 0) FROM attempts t
            WHERE t.account_id = a.id AND t.dialed_at >= date_trunc('day', $2::timestamptz, 'UTC'))
       END AS talk_seconds_today
FROM accounts a WHERE a.id = ANY($1::uuid[]);

-- name: first_pending_seq
-- The seq of campaign $1's first new contact inside its calling window at $3 ($2, one
-- past the last seq, when none is): where the actor's cursor starts, so a resume late in
-- a big campaign does not walk it window by window. One pass over the key up to that
-- contact (pending contacts are not in the status index: 0004).
WITH gate AS (
    SELECT w.win IS NULL AS open_all,
           ARRAY(SELECT z.zone FROM campaign_zones z
                 WHERE z.campaign_id = $1 AND w.win IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM unnest(z.names) AS name
                                   WHERE NOT window_open_in(w.win, name, $3))) AS zones
    FROM (SELECT campaign_window($1) AS win) AS w
)
SELECT coalesce((SELECT seq FROM contacts
                 WHERE campaign_id = $1 AND status = 'pending'
                   AND ((SELECT open_all FROM gate) OR zone = ANY((SELECT zones FROM gate)::smallint[]))
                 ORDER BY seq LIMIT 1), $2);

-- name: recent_dials
-- Dials of accounts $1 in the rate window before $2 ($3 seconds): the window a new
-- process starts with, so calls_per_minute holds across a restart.
SELECT account_id, dialed_at FROM attempts
WHERE account_id = ANY($1::uuid[])
  AND dialed_at > $2::timestamptz - make_interval(secs => $3::float8) AND dialed_at <= $2
ORDER BY account_id, dialed_at;

-- name: sweep_orphans
-- Open attempts with no call behind them: those of this process ($4) dialed before $2
-- and not live here ($3, the ids it has live: their claim's answer was lost or their
-- result could not be written), and those of processes that are gone (no live row in
-- gateway_peers: killed, or cut off from the database, which ends its calls before its
-- leases can be taken; attempts older than leases have no owner). They are interrupted,
-- ended at $1 or, when their account's lease has been taken since they were dialed, when
-- it was taken (their calls had ended by then), and their contacts retried (if attempts
-- remain and the campaign can still dial) or failed. Run by several processes at once,
-- an attempt is finished once: the second UPDATE finds its outcome set.
WITH open AS (
    UPDATE attempts a
    SET outcome = 'interrupted',
        ended_at = coalesce(a.ended_at, greatest(a.dialed_at, least($1,
            (SELECT l.acquired_at FROM account_leases l
             WHERE l.account_id = a.account_id AND l.epoch > a.lease_epoch))))
    WHERE a.outcome IS NULL
      AND CASE WHEN a.owner = $4 THEN a.dialed_at < $2 AND a.id <> ALL($3::uuid[])
               ELSE NOT EXISTS (SELECT 1 FROM gateway_peers p
                                WHERE p.id = a.owner AND p.expires_at > now()) END
    RETURNING a.id, a.account_id, a.campaign_id, a.contact_seq, a.attempt, a.ended_at,
              a AS call
), decision AS (
    SELECT o.id AS attempt_id, o.campaign_id, o.contact_seq,
           retry_delay_seconds(cp.retry_policy, 'interrupted', cp.retry_delay_seconds)
               AS retry_delay_seconds,
           CASE WHEN o.attempt < retry_max_attempts(cp.retry_policy, 'interrupted',
                                                    cp.retries_per_contact)
                     AND cp.status IN ('running', 'paused') THEN 'retry_pending'
                ELSE 'failed' END AS status
    FROM open o JOIN campaigns cp ON cp.id = o.campaign_id
), decided AS (
    UPDATE contacts c
    SET status = d.status, last_outcome = 'interrupted', updated_at = now(),
        next_attempt_at = CASE WHEN d.status = 'retry_pending'
                               THEN $1 + make_interval(secs => d.retry_delay_seconds) END
    FROM decision d
    WHERE c.campaign_id = d.campaign_id AND c.seq = d.contact_seq AND c.status = 'in_progress'
    RETURNING d.attempt_id, c.campaign_id, c.status, c AS contact
), emitted AS (
    -- Their webhook events (0009), as record_results writes them.
    INSERT INTO webhook_deliveries (endpoint_id, event_id, campaign_id, type, payload)
    SELECT e.id, ev.event_id, ev.campaign_id, ev.type,
           webhook_payload(ev.type, CASE WHEN ev.ord = 1 THEN webhook_call(o.call)
                                         ELSE webhook_contact(d.contact, cp.contact_id_prefix,
                                                              cp.custom_field_names) END)
    FROM (SELECT events.*, gen_random_uuid() AS event_id FROM (
              SELECT o.id AS attempt_id, 1 AS ord, 'call.ended' AS type, o.account_id,
                     o.campaign_id, o.ended_at
              FROM open o
              UNION ALL
              SELECT o.id, 2, 'contact.finished', o.account_id, o.campaign_id, o.ended_at
              FROM decided d JOIN open o ON o.id = d.attempt_id
              WHERE d.status = 'failed') AS events
          WHERE EXISTS (SELECT 1 FROM webhook_endpoints e
                        WHERE e.account_id = events.account_id)) AS ev
    JOIN webhook_endpoints e ON e.account_id = ev.account_id AND e.disabled_at IS NULL
                            AND ev.type = ANY(e.events)
    JOIN open o ON o.id = ev.attempt_id
    LEFT JOIN decided d ON d.attempt_id = ev.attempt_id AND ev.ord = 2
    JOIN campaigns cp ON cp.id = ev.campaign_id
    ORDER BY ev.ended_at, ev.attempt_id, ev.ord, e.id
)
SELECT campaign_id FROM decided;
