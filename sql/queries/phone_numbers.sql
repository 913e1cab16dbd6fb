-- name: insert
INSERT INTO phone_numbers (account_id, number, outbound_enabled, label)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: get
SELECT * FROM phone_numbers WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL;

-- name: page
SELECT * FROM phone_numbers
WHERE account_id = $1 AND deleted_at IS NULL
ORDER BY created_at, id
LIMIT $2 OFFSET $3;

-- name: count
SELECT count(*) FROM phone_numbers WHERE account_id = $1 AND deleted_at IS NULL;

-- name: update
UPDATE phone_numbers SET
    outbound_enabled = CASE WHEN $5 THEN $3 ELSE outbound_enabled END,
    label            = CASE WHEN $6 THEN $4 ELSE label END,
    updated_at = now()
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
RETURNING *;

-- name: delete
UPDATE phone_numbers SET deleted_at = now(), outbound_enabled = false, updated_at = now()
WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
RETURNING id;
