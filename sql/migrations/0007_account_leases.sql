-- Several gateway processes on one database: each account is dialed by one process at a
-- time, under a lease.
--
-- gateway_peers: one row per running process (its id is fresh at every start), renewed
-- with its leases; a row whose expires_at has passed is a process that is gone (killed,
-- or cut off from the database). A stopping process (shutting down, its calls ending)
-- takes no account: the others share the accounts without it. Rows of stopped processes are deleted by the process
-- itself at a clean stop, those of dead ones by the others an hour after they expired.
--
-- account_leases: who dials an account's campaigns. owner NULL (released) or an
-- expires_at in the past (not renewed) means anyone may take it; taking it increments
-- epoch. A claim refuses a lease that is not the claimer's, not of the claimer's epoch or
-- expired (fencing), and every attempt row records the owner and epoch it was dialed
-- under, so a takeover finishes only the open attempts of owners that are gone.
-- acquired_at bounds when the calls of earlier epochs ended (each owner ends its calls
-- before its lease can be taken): a recovered attempt ends no later than that.

CREATE TABLE gateway_peers (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    stopping boolean NOT NULL DEFAULT false
);

CREATE TABLE account_leases (
    account_id uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    owner uuid,
    epoch bigint NOT NULL CHECK (epoch >= 1),
    acquired_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX account_leases_owner ON account_leases (owner) WHERE owner IS NOT NULL;

-- No default: adding them rewrites nothing. Attempts made before this migration have
-- neither, so they count as an owner that is gone.
ALTER TABLE attempts
    ADD COLUMN owner uuid,
    ADD COLUMN lease_epoch bigint;

-- The live phases of a campaign's calls (ringing, connected to the agent) are known only
-- to the process that dials it: it publishes them here as they change, so a live-metrics
-- stream served by any process shows them. A row counts only while its owner holds a live
-- lease on the campaign's account (a dead owner's figures are not shown).
CREATE TABLE campaign_live_phases (
    campaign_id uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    owner uuid NOT NULL,
    ringing integer NOT NULL,
    connected integer NOT NULL,
    updated_at timestamptz NOT NULL
);
