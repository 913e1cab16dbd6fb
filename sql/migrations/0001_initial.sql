-- The whole product's schema: tenants and their keys, the things a campaign dials with,
-- campaigns, their contacts and every dial attempt. PostgreSQL is the source of truth:
-- the engine keeps nothing it cannot rebuild from these rows.

CREATE TABLE accounts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Caps. 0 blocks dialing on that dimension (kill-switch); NULL daily caps: unlimited.
    concurrent_max      integer NOT NULL CHECK (concurrent_max >= 0),
    calls_per_minute    integer NOT NULL CHECK (calls_per_minute >= 0),
    daily_calls_max     integer CHECK (daily_calls_max >= 0),
    daily_minutes_max   integer CHECK (daily_minutes_max >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- sha256 of the whole key: keys are 256-bit random, so a fast hash is enough and
    -- lookups stay one index probe per request.
    key_hash     bytea NOT NULL UNIQUE,
    -- The first characters of the key, safe to show and log ("gw_3fa9c1...").
    prefix       text NOT NULL,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

-- Agents and numbers are soft-deleted: campaigns and attempts keep pointing at them, and a
-- running campaign whose agent disappears fails with a reason instead of a dangling id.
CREATE TABLE agents (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    greeting     text NOT NULL DEFAULT '',
    sip_uri      text,
    -- Where the agent takes the call's audio (the SDP offer's address); NULL: the SIP
    -- adapter's media_address.
    media_address text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX agents_account ON agents (account_id, created_at, id) WHERE deleted_at IS NULL;

CREATE TABLE phone_numbers (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id        uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    number            text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    outbound_enabled  boolean NOT NULL DEFAULT true,
    label             text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);
CREATE UNIQUE INDEX phone_numbers_account_number ON phone_numbers (account_id, number)
    WHERE deleted_at IS NULL;
CREATE INDEX phone_numbers_account ON phone_numbers (account_id, created_at, id)
    WHERE deleted_at IS NULL;

CREATE TABLE campaigns (
    id                    uuid PRIMARY KEY,
    account_id            uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    agent_id              uuid NOT NULL REFERENCES agents (id),
    phone_number_id       uuid NOT NULL REFERENCES phone_numbers (id),
    status                text NOT NULL CHECK (status IN
                              ('draft', 'scheduled', 'running', 'paused', 'completed', 'failed')),
    max_concurrent_calls  integer NOT NULL CHECK (max_concurrent_calls BETWEEN 1 AND 100),
    retries_per_contact   integer NOT NULL CHECK (retries_per_contact BETWEEN 0 AND 5),
    retry_delay_seconds   integer NOT NULL CHECK (retry_delay_seconds >= 0),
    scheduled_at          timestamptz,
    started_at            timestamptz,
    completed_at          timestamptz,
    failure_reason        text,
    contacts_total        integer NOT NULL CHECK (contacts_total >= 0),
    rows_rejected         integer NOT NULL DEFAULT 0,
    created_by            uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'scheduled' OR scheduled_at IS NOT NULL)
);
CREATE INDEX campaigns_account ON campaigns (account_id, created_at DESC, id);
-- The supervisor's scans: running campaigns to resume, scheduled ones whose time has come.
CREATE INDEX campaigns_active ON campaigns (status, scheduled_at)
    WHERE status IN ('scheduled', 'running', 'paused');

CREATE TABLE contacts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    campaign_id      uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- Dense 0-based position among the accepted rows: page p is seq in [100p, 100p+100),
    -- one index range scan however deep the page.
    seq              integer NOT NULL,
    -- The 1-based line of the CSV data row the contact came from (header is row 0).
    row_number       integer NOT NULL,
    phone_number     text NOT NULL,
    custom_fields    jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'in_progress', 'retry_pending', 'completed', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_outcome     text,
    last_attempt_at  timestamptz,
    -- When the contact may be dialed next; NULL means as soon as possible.
    next_attempt_at  timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, seq),
    UNIQUE (campaign_id, phone_number)
);
-- Contact pages filtered by status, in import order.
CREATE INDEX contacts_campaign_status ON contacts (campaign_id, status, seq);
-- The dial loop takes due retries first (oldest due first), then new contacts in import
-- order (contacts_campaign_status serves that).
CREATE INDEX contacts_retry_due ON contacts (campaign_id, next_attempt_at)
    WHERE status = 'retry_pending';

CREATE TABLE attempts (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id        uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    campaign_id       uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id        uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- 1 for the first dial, 2 for the first retry...; the unique key makes a double dial of
    -- the same attempt impossible whatever crashes.
    attempt           integer NOT NULL CHECK (attempt BETWEEN 1 AND 6),
    phone_number      text NOT NULL,
    outcome           text CHECK (outcome IN
                          ('answered', 'busy', 'no_answer', 'failed', 'invalid_number', 'interrupted')),
    dialed_at         timestamptz NOT NULL DEFAULT now(),
    answered_at       timestamptz,
    ended_at          timestamptz,
    duration_seconds  double precision,
    sip_call_id       text,
    sip_status        integer,
    UNIQUE (contact_id, attempt)
);
CREATE INDEX attempts_campaign ON attempts (campaign_id, dialed_at, id);
-- Restart recovery: attempts written but never finished.
CREATE INDEX attempts_open ON attempts (campaign_id) WHERE outcome IS NULL;
-- Daily caps: an account's dials since midnight.
CREATE INDEX attempts_account_day ON attempts (account_id, dialed_at);
