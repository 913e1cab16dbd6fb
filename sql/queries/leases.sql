-- Account leases (0007): which process dials which account. Every time here is the
-- database's (now()), the one clock all processes share; a process's own deadlines are
-- derived from when it sent a statement, which is never later than the database's now().

-- name: renew
-- Process $1 (named $2; $6: it is stopping) is alive for $3 seconds more, and so are its
-- leases of epochs $5 on accounts $4 that have not expired. Returns the leases renewed: one held and not
-- returned is lost. The peer row is written even when it was deleted (a process that was
-- cut off long enough for the others to tidy it away), so it is listed again.
WITH peer AS (
    INSERT INTO gateway_peers (id, name, started_at, renewed_at, expires_at, stopping)
    VALUES ($1, $2, now(), now(), now() + make_interval(secs => $3), $6)
    ON CONFLICT (id) DO UPDATE
    SET renewed_at = now(), expires_at = now() + make_interval(secs => $3),
        stopping = $6
    RETURNING id
)
UPDATE account_leases l
SET expires_at = now() + make_interval(secs => $3)
FROM unnest($4::uuid[], $5::bigint[]) AS held(account_id, epoch), peer
WHERE l.account_id = held.account_id AND l.epoch = held.epoch AND l.owner = peer.id
  AND l.expires_at > now()
RETURNING l.account_id, l.epoch;

-- name: demand
-- The accounts that need a dialer (a campaign running, or scheduled and due by $1), with
-- their lease if any: owner and whether it is live; and how many processes are live and
-- not stopping (they share the accounts).
WITH wanted AS (
    SELECT DISTINCT account_id FROM campaigns
    WHERE status = 'running' OR (status = 'scheduled' AND scheduled_at <= $1)
)
SELECT w.account_id, l.owner, l.owner IS NOT NULL AND l.expires_at > now() AS owned,
       (SELECT count(*) FROM gateway_peers WHERE expires_at > now() AND NOT stopping) AS peers
FROM wanted w LEFT JOIN account_leases l ON l.account_id = w.account_id;

-- name: acquire
-- Process $1 takes the leases of accounts $2 that are free (released or expired), for $3
-- seconds: a new epoch each. Two processes racing for one account: the row lock makes the
-- second re-check the WHERE against the first's lease, which it then fails.
INSERT INTO account_leases AS l (account_id, owner, epoch, acquired_at, expires_at)
SELECT a.id, $1, 1, now(), now() + make_interval(secs => $3)
FROM accounts a WHERE a.id = ANY($2::uuid[])
ON CONFLICT (account_id) DO UPDATE
SET owner = excluded.owner, epoch = l.epoch + 1, acquired_at = now(),
    expires_at = excluded.expires_at
WHERE l.owner IS NULL OR l.expires_at <= now()
RETURNING l.account_id, l.epoch;

-- name: release
-- Process $1 gives up its leases of accounts $2 (every account of its own when $2 is
-- NULL), its calls of them ended: another process may take them at once. Tells the
-- others, so they need not wait for their next look.
WITH released AS (
    UPDATE account_leases SET owner = NULL, expires_at = now()
    WHERE owner = $1 AND ($2::uuid[] IS NULL OR account_id = ANY($2::uuid[]))
    RETURNING account_id
)
SELECT account_id, pg_notify('gateway', 'lease ' || account_id) FROM released;

-- name: retire
-- A clean stop: process $1 is gone now (its leases released first).
DELETE FROM gateway_peers WHERE id = $1;

-- name: forget_dead
-- Peers expired for more than $1 seconds: gone for good (their attempts were recovered).
DELETE FROM gateway_peers WHERE expires_at < now() - make_interval(secs => $1);

-- name: status
-- Every process known, live or not, with the accounts each holds a live lease on.
SELECT p.id, p.name, p.started_at, p.renewed_at, p.expires_at, p.expires_at > now() AS live,
       p.stopping,
       coalesce(array_agg(l.account_id ORDER BY l.account_id)
                FILTER (WHERE l.account_id IS NOT NULL), '{}') AS accounts
FROM gateway_peers p
LEFT JOIN account_leases l ON l.owner = p.id AND l.expires_at > now()
GROUP BY p.id
ORDER BY p.started_at, p.id;

-- name: notify
-- Tell every process (the owner of the campaign's account among them) that campaign $1's
-- row changed.
SELECT pg_notify('gateway', 'campaign ' || $1::uuid);
