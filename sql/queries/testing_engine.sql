-- Queries the engine's fault tests use to look at (and tamper with) the database.

-- name: lease
-- Account $1's lease (leases.sql): its owner and epoch, and whether it is live.
SELECT owner, epoch, owner IS NOT NULL AND expires_at > now() AS live
FROM account_leases WHERE account_id = $1;

-- name: campaign_lease
-- The live lease on campaign $1's account, if any.
SELECT l.owner, l.epoch FROM account_leases l JOIN campaigns cp ON cp.account_id = l.account_id
WHERE cp.id = $1 AND l.owner IS NOT NULL AND l.expires_at > now();

-- name: shift_attempts
-- Move campaign $1's attempts $2 seconds into the past (as if dialed that much earlier).
UPDATE attempts
SET dialed_at = dialed_at - make_interval(secs => $2),
    answered_at = answered_at - make_interval(secs => $2),
    ended_at = ended_at - make_interval(secs => $2)
WHERE campaign_id = $1;

-- name: refuse_results_function
-- Result writes for +12122000003 fail (any outcome but 'interrupted'): a batch refused for
-- a reason that is not an outage.
CREATE FUNCTION refuse_results() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.phone_number = '+12122000003' AND NEW.outcome IS DISTINCT FROM 'interrupted' THEN
        RAISE EXCEPTION 'result refused by the test';
    END IF;
    RETURN NEW;
END $$;

-- name: refuse_results_trigger
CREATE TRIGGER refuse_results BEFORE UPDATE OF outcome ON attempts
FOR EACH ROW WHEN (OLD.outcome IS NULL) EXECUTE FUNCTION refuse_results();

-- name: sleeping_backends
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active';

-- name: sleep
SELECT pg_sleep($1);

-- name: terminate
SELECT pg_terminate_backend($1);

-- name: waiting_on_a_lock
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock';

-- name: live_leases
-- Every live lease with its owner's process name (host:pid).
SELECT l.account_id, l.epoch, p.name FROM account_leases l JOIN gateway_peers p ON p.id = l.owner
WHERE l.expires_at > now() AND p.expires_at > now();

-- name: lease_attempts
-- Campaign $1's attempts with the process and lease epoch each was dialed under.
SELECT a.id, a.contact_id, a.attempt, a.outcome, a.dialed_at, a.ended_at, a.owner,
       a.lease_epoch, p.name AS owner_name
FROM attempts a LEFT JOIN gateway_peers p ON p.id = a.owner
WHERE a.campaign_id = $1 ORDER BY a.dialed_at, a.id;
