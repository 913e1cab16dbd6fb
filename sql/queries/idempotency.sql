-- Idempotency keys (0010): claims of (account, key) and the responses they stored.

-- name: claim
-- Claim key $2 of account $1 with token $3 at $5 ($4: the request's hash, if known yet).
-- A new key is inserted; an existing row is taken over only when it no longer counts: it
-- was created before $6 (older than 24 h), or it is a claim whose heartbeat is older than
-- $7 (its request died). The token if the key is now this request's, no row otherwise.
INSERT INTO idempotency_keys AS k (account_id, key, claim, request_hash, created_at,
                                   heartbeat_at)
VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (account_id, key) DO UPDATE
SET claim = EXCLUDED.claim, request_hash = EXCLUDED.request_hash, status = NULL,
    content_type = NULL, body = NULL, created_at = EXCLUDED.created_at,
    heartbeat_at = EXCLUDED.heartbeat_at, completed_at = NULL
WHERE k.created_at < $6 OR (k.completed_at IS NULL AND k.heartbeat_at < $7)
RETURNING claim;

-- name: get
SELECT claim, request_hash, status, content_type, body, created_at, heartbeat_at,
       completed_at
FROM idempotency_keys WHERE account_id = $1 AND key = $2;

-- name: heartbeat
-- The claim's request is still acting; no row: its claim was taken over (or released).
UPDATE idempotency_keys SET heartbeat_at = $4
WHERE account_id = $1 AND key = $2 AND claim = $3 AND completed_at IS NULL
RETURNING 1;

-- name: complete
-- Store the claim's response ($5 status, $6 Content-Type, $7 body) and request hash $4.
UPDATE idempotency_keys
SET request_hash = $4, status = $5, content_type = $6, body = $7, completed_at = $8
WHERE account_id = $1 AND key = $2 AND claim = $3 AND completed_at IS NULL
RETURNING 1;

-- name: release
-- The claim's request stored nothing (a 5xx, or its body could not be read): the key is
-- free again, for a retry to act.
DELETE FROM idempotency_keys
WHERE account_id = $1 AND key = $2 AND claim = $3 AND completed_at IS NULL;

-- name: sweep
-- Up to $2 rows created before $1 (expired: they count as absent already), oldest first.
-- The outer created_at test is checked again on a row a claim took over meanwhile (it
-- has a new created_at then), so a fresh claim is never swept.
DELETE FROM idempotency_keys
WHERE (account_id, key) IN (SELECT account_id, key FROM idempotency_keys
                            WHERE created_at < $1
                            ORDER BY created_at
                            LIMIT $2)
  AND created_at < $1;
