-- name: count
SELECT count(*) FROM accounts;

-- name: insert
INSERT INTO accounts (name, concurrent_max, calls_per_minute)
VALUES ($1, $2, $3)
RETURNING *;

-- name: insert_key
INSERT INTO api_keys (account_id, key_hash, prefix, label)
VALUES ($1, $2, $3, $4)
RETURNING id;

-- name: key_exists
SELECT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = $1);

-- name: oldest
SELECT * FROM accounts ORDER BY created_at, id LIMIT 1;

-- name: by_key
SELECT a.*, k.id AS api_key_id
FROM api_keys k JOIN accounts a ON a.id = k.account_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: get
SELECT * FROM accounts WHERE id = $1;

-- name: list
SELECT * FROM accounts ORDER BY created_at, id;

-- name: set_limits
-- $2..$5: new caps; $6..$9: whether each is being set (so NULL can mean "unlimited").
UPDATE accounts SET
    concurrent_max    = CASE WHEN $6 THEN $2 ELSE concurrent_max END,
    calls_per_minute  = CASE WHEN $7 THEN $3 ELSE calls_per_minute END,
    daily_calls_max   = CASE WHEN $8 THEN $4 ELSE daily_calls_max END,
    daily_minutes_max = CASE WHEN $9 THEN $5 ELSE daily_minutes_max END,
    updated_at = now()
WHERE id = $1
RETURNING *;

-- name: get_settings
SELECT calling_window FROM accounts WHERE id = $1;

-- name: set_calling_window
-- $2: canonical window JSON, or NULL for none. Campaigns without a window of their own
-- read it through campaign_window() (0008). The account's running campaigns are told
-- (control.py), so an actor asleep until a window opens looks again at once: the window
-- may be wider now, or gone.
WITH changed AS (
    UPDATE accounts SET calling_window = $2, updated_at = now()
    WHERE id = $1
    RETURNING id, calling_window
), told AS (
    SELECT pg_notify('gateway', 'campaign ' || cp.id)
    FROM campaigns cp, changed WHERE cp.account_id = changed.id AND cp.status = 'running'
)
SELECT calling_window, (SELECT count(*) FROM told) AS told FROM changed;

-- name: bootstrap_lock
-- Two gateways starting on one empty database must create one default account, not two.
SELECT pg_advisory_xact_lock(7231000002);
