-- Campaign transitions. Every one locks the campaign row; start and resume also lock the
-- account row, so two starts in one account are serialised and cannot both pass the
-- concurrency budget check.

-- name: lock_account
SELECT concurrent_max FROM accounts WHERE id = $1 FOR UPDATE;

-- name: lock_campaign
-- NO KEY UPDATE: it must not conflict with the KEY SHARE lock that a claim's attempt
-- insert takes on the campaign row (the attempts.campaign_id foreign key) while it holds
-- contact rows, or a stop during full-speed dialing deadlocks with the claim.
SELECT id, status, max_concurrent_calls, agent_id, phone_number_id FROM campaigns
WHERE id = $1 AND account_id = $2
FOR NO KEY UPDATE;

-- name: reserved
-- Concurrency reserved by the account's other running campaigns.
SELECT coalesce(sum(max_concurrent_calls), 0) FROM campaigns
WHERE account_id = $1 AND status = 'running' AND id <> $2;

-- name: set_running
UPDATE campaigns
SET status = 'running', started_at = coalesce(started_at, $2), updated_at = now()
WHERE id = $1;

-- name: set_paused
UPDATE campaigns SET status = 'paused', updated_at = now() WHERE id = $1;

-- name: set_finished
-- Stop (completed) or fail: never-dialed contacts are skipped; contacts waiting for a retry
-- have no attempt left to make, so they fail with their last outcome. $5: the account.
WITH campaign AS (
    UPDATE campaigns
    SET status = $2, completed_at = $3, failure_reason = $4, updated_at = now()
    WHERE id = $1
    RETURNING id
), ended AS (
    UPDATE contacts
    SET status = CASE WHEN status = 'pending' THEN 'skipped' ELSE 'failed' END,
        next_attempt_at = NULL, updated_at = now()
    WHERE campaign_id = (SELECT id FROM campaign) AND status IN ('pending', 'retry_pending')
    RETURNING contacts AS contact, status
)
-- contact.finished for the contacts dialed before (now failed), not for those never
-- dialed (skipped: the campaign's own event counts them).
INSERT INTO webhook_deliveries (endpoint_id, event_id, campaign_id, type, payload)
SELECT e.id, ev.event_id, cp.id, 'contact.finished',
       webhook_payload('contact.finished', webhook_contact(ev.contact, cp.contact_id_prefix,
                                                           cp.custom_field_names))
FROM (SELECT ended.contact, gen_random_uuid() AS event_id FROM ended
      WHERE ended.status = 'failed'
        AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE account_id = $5)) AS ev
JOIN campaigns cp ON cp.id = $1
JOIN webhook_endpoints e ON e.account_id = $5 AND e.disabled_at IS NULL
                        AND 'contact.finished' = ANY(e.events)
ORDER BY (ev.contact).seq, e.id;
