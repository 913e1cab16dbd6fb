-- The dialer lock: one process dials a database at a time. A session-level advisory lock
-- on a dedicated connection, so it lasts exactly as long as that connection. The key is
-- the pair ('gate', 'dial') as two int4s; the claim (dialing.sql) checks it by the same
-- numbers in pg_locks (classid, objid, objsubid = 2 for the two-key form).

-- name: try_lock
SELECT pg_try_advisory_lock(1734439013, 1684627820);

-- name: holds
-- Does this session still hold the lock (asked on the lock's own connection)?
SELECT EXISTS (SELECT 1 FROM pg_locks
               WHERE locktype = 'advisory' AND classid = 1734439013 AND objid = 1684627820
                 AND objsubid = 2 AND granted AND pid = pg_backend_pid());
