-- Idempotency keys: the first answer to each (account, Idempotency-Key) of a POST under
-- /api/v1, replayed for 24 hours to a retry of the same request (gateway/http/idempotency.py).
--
-- A row is first a claim (completed_at NULL): the request that wrote it is acting, and
-- refreshes heartbeat_at every few seconds while it does; a claim whose heartbeat is
-- older than the takeover age (its process died, or lost the database) may be taken over
-- by a retry, so a dead request never blocks its key. `claim` is the claiming request's
-- random token: only that request completes or releases the row, so one whose claim was
-- taken over cannot overwrite its successor's. A completed row holds the response (status,
-- content_type, body) and the request's hash (sha256 of its method, path, media type and
-- body): a later request with the key and another hash is refused. request_hash is set at
-- the claim when the body was read first (JSON), at completion when it streams
-- (multipart). Answers of 5xx are never stored: their claim is deleted. Rows older than
-- 24 h count as absent (the next claim of the key replaces them) and are deleted in
-- batches by a sweep over idempotency_keys_created.

CREATE TABLE idempotency_keys (
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    claim         uuid NOT NULL,
    request_hash  bytea,
    status        smallint CHECK (status BETWEEN 100 AND 499),
    content_type  text,
    body          bytea,
    created_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    completed_at  timestamptz,
    PRIMARY KEY (account_id, key),
    CHECK ((completed_at IS NULL) = (status IS NULL)),
    CHECK (completed_at IS NULL OR (request_hash IS NOT NULL AND body IS NOT NULL))
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
