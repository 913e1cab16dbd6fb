-- name: insert
INSERT INTO agents (account_id, name, status, greeting, sip_uri, max_concurrent_calls)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: get
SELECT * FROM agents WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL;

-- name: page
SELECT *
FROM agents
WHERE account_id = $1 AND deleted_at IS NULL
ORDER BY created_at, id
LIMIT $2 OFFSET $3;

-- name: count
SELECT count(*) FROM agents WHERE account_id = $1 AND deleted_at IS NULL;

-- name: update
-- $3..$7: new values; $8..$12: whether each field is being changed.
UPDATE agents SET
    name                 = CASE WHEN $8 THEN $3 ELSE name END,
    status               = CASE WHEN $9 THEN $4 ELSE status END,
    greeting             = CASE WHEN $10 THEN $5 ELSE greeting END,
    sip_uri              = CASE WHEN $11 THEN $6 ELSE sip_uri END,
    max_concurrent_calls = CASE WHEN $12 THEN $7 ELSE max_concurrent_calls END,
    updated_at = now()
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
RETURNING *;

-- name: delete
UPDATE agents SET deleted_at = now(), status = 'inactive', updated_at = now()
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
RETURNING id;
