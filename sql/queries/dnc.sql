-- The account's do-not-call list (dnc_numbers: E.164 numbers per account).

-- name: add
-- $2: distinct E.164 numbers, inserted (and so locked) in the order given: every writer
-- passes them in ascending order of their digits, so two adds of overlapping lists wait
-- for each other instead of deadlocking. The count of those that were not listed yet.
WITH added AS (
    INSERT INTO dnc_numbers (account_id, number, source, created_at)
    SELECT $1, given.number, $3, $4
    FROM unnest($2::text[]) WITH ORDINALITY AS given (number, position)
    ORDER BY given.position
    ON CONFLICT (account_id, number) DO NOTHING
    RETURNING 1)
SELECT count(*) FROM added;

-- name: page
-- $2: one number (exact match), or NULL for all of them.
SELECT number, source, created_at FROM dnc_numbers
WHERE account_id = $1 AND ($2::text IS NULL OR number = $2)
ORDER BY number
LIMIT $3 OFFSET $4;

-- name: count
SELECT count(*) FROM dnc_numbers
WHERE account_id = $1 AND ($2::text IS NULL OR number = $2);

-- name: listed
-- Which of the numbers $2 are on the account's list.
SELECT number FROM dnc_numbers
WHERE account_id = $1 AND number = ANY ($2::text[])
ORDER BY number;

-- name: delete
DELETE FROM dnc_numbers WHERE account_id = $1 AND number = $2
RETURNING number;
