-- Queries the engine's fault tests use to look at (and tamper with) the database.

-- name: dialer_pid
-- The backend holding the dialer lock (dialer_lock.sql), if any.
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND classid = 1734439013 AND objid = 1684627820
  AND objsubid = 2 AND granted;

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
