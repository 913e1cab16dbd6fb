-- name: lock
-- One migrator at a time across every gateway process sharing the database.
SELECT pg_advisory_xact_lock(7231000001);

-- name: create_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: get
SELECT version, name, checksum FROM schema_migrations WHERE version = $1;

-- name: record
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);
