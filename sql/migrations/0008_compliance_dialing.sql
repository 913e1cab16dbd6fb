-- Compliance dialing: calling windows in each contact's local time, a do-not-call list per
-- account, retries by outcome, dispositions from the agent.
--
-- Calling windows. A window is {"days": ["mon", ...], "start": "HH:MM", "end": "HH:MM"}
-- (end after start, "24:00" for the end of the day), in each contact's local time: a
-- campaign's own (campaigns.calling_window) or else its account's (accounts.
-- calling_window); none: no window. A contact's zones are found at import (a timezone
-- column, else its number) and stored once per campaign: campaign_zones holds each
-- distinct set of zones as a small number, contacts.zone refers to it. A contact is
-- inside its window when the window is open in every zone of its set (a number that
-- spans zones waits for the hours they share). The claim computes the set of zones open
-- at its own "now" and takes only contacts of those zones: no contact outside its window
-- is ever claimed, whichever process claims, across restarts and DST changes (the zone
-- rules are PostgreSQL's). contact_counts now counts by zone as well, so the contacts
-- that wait for their window are counted from a few rows, not a scan.
--
-- Retries by outcome. campaigns.retry_policy maps an outcome (busy, no_answer, failed,
-- agent_unavailable, and voicemail: an answered call the agent marked so) to its own
-- delay_seconds and max_attempts (attempts in all, at most 6); an outcome absent from it,
-- or a key absent from its entry, uses the campaign's retries_per_contact and
-- retry_delay_seconds. A retry is due at the first time after its delay at which its
-- window is open (window_next_open), so retries do not pile up before a closed window.
--
-- Dispositions. The agent says how an answered call went (completed, voicemail,
-- callback, do_not_call, not_interested), through the API or on its BYE; the attempt
-- keeps it (with callback_at and notes), the contact shows its last one, and
-- attempt_counts counts them per campaign (kind 'disposition:<name>').
--
-- Do-not-call list: dnc_numbers, E.164 numbers per account. An import rejects the
-- numbers on it; the claim skips a contact whose number was added since (status skipped,
-- last_outcome do_not_call), so a number on the list is never dialed.

ALTER TABLE accounts ADD COLUMN calling_window jsonb;
ALTER TABLE campaigns ADD COLUMN calling_window jsonb;
ALTER TABLE campaigns ADD COLUMN retry_policy jsonb NOT NULL DEFAULT '{}';

CREATE TABLE campaign_zones (
    campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    zone smallint NOT NULL CHECK (zone >= 0),
    names text[] NOT NULL CHECK (cardinality(names) >= 1),
    PRIMARY KEY (campaign_id, zone)
);

-- Contacts imported before windows existed have no zone found: they are in UTC.
ALTER TABLE contacts ADD COLUMN zone smallint NOT NULL DEFAULT 0;
ALTER TABLE contacts ADD COLUMN disposition text;
INSERT INTO campaign_zones (campaign_id, zone, names) SELECT id, 0, '{UTC}' FROM campaigns;

ALTER TABLE attempts ADD COLUMN disposition text CHECK (disposition IN
    ('completed', 'voicemail', 'callback', 'do_not_call', 'not_interested'));
ALTER TABLE attempts ADD COLUMN callback_at timestamptz;
ALTER TABLE attempts ADD COLUMN disposition_notes text;
ALTER TABLE attempts ADD COLUMN disposition_at timestamptz;
ALTER TABLE contacts ADD CONSTRAINT contacts_disposition_check CHECK (disposition IN
    ('completed', 'voicemail', 'callback', 'do_not_call', 'not_interested'));

CREATE TABLE dnc_numbers (
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    number text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    source text NOT NULL CHECK (source IN ('api', 'upload', 'disposition')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, number)
);

-- Counts by zone too (see above). Rows are still taken in key order by every trigger.
ALTER TABLE contact_counts ADD COLUMN zone smallint NOT NULL DEFAULT 0;
ALTER TABLE contact_counts DROP CONSTRAINT contact_counts_pkey;
ALTER TABLE contact_counts ADD PRIMARY KEY (campaign_id, status, zone);

CREATE OR REPLACE FUNCTION contact_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO contact_counts AS cc (campaign_id, status, zone, n)
        SELECT campaign_id, status, zone, sum(delta) FROM (
            SELECT campaign_id, status, zone, -1 AS delta FROM old_rows
            UNION ALL
            SELECT campaign_id, status, zone, 1 FROM new_rows) AS changes
        GROUP BY campaign_id, status, zone HAVING sum(delta) <> 0
        ORDER BY campaign_id, status, zone
        ON CONFLICT (campaign_id, status, zone) DO UPDATE SET n = cc.n + EXCLUDED.n;
    ELSE  -- DELETE (inserts are counted by the import)
        UPDATE contact_counts AS cc SET n = cc.n - gone.n
        FROM (SELECT campaign_id, status, zone, count(*) AS n FROM old_rows
              GROUP BY campaign_id, status, zone ORDER BY campaign_id, status, zone) AS gone
        WHERE cc.campaign_id = gone.campaign_id AND cc.status = gone.status
          AND cc.zone = gone.zone;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION campaign_contact_counts(campaign uuid) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(status, n), '{}')
    FROM (SELECT status, sum(n)::bigint AS n FROM contact_counts
          WHERE campaign_id = campaign GROUP BY status HAVING sum(n) > 0) AS counts
$$;

-- Dispositions are counted beside outcomes: kind 'disposition:<name>'.
CREATE OR REPLACE FUNCTION attempt_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO attempt_counts AS ac (campaign_id, kind, n)
        SELECT campaign_id, kind, count(*) FROM (
            SELECT campaign_id, 'dialed' AS kind FROM new_rows
            UNION ALL
            SELECT campaign_id, outcome FROM new_rows WHERE outcome IS NOT NULL
            UNION ALL
            SELECT campaign_id, 'disposition:' || disposition FROM new_rows
            WHERE disposition IS NOT NULL) AS added
        GROUP BY campaign_id, kind ORDER BY campaign_id, kind
        ON CONFLICT (campaign_id, kind) DO UPDATE SET n = ac.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO attempt_counts AS ac (campaign_id, kind, n)
        SELECT campaign_id, kind, sum(delta) FROM (
            SELECT campaign_id, outcome AS kind, -1 AS delta FROM old_rows
            WHERE outcome IS NOT NULL
            UNION ALL
            SELECT campaign_id, outcome, 1 FROM new_rows WHERE outcome IS NOT NULL
            UNION ALL
            SELECT campaign_id, 'disposition:' || disposition, -1 FROM old_rows
            WHERE disposition IS NOT NULL
            UNION ALL
            SELECT campaign_id, 'disposition:' || disposition, 1 FROM new_rows
            WHERE disposition IS NOT NULL
            UNION ALL
            SELECT campaign_id, 'dialed', -1 FROM old_rows
            UNION ALL
            SELECT campaign_id, 'dialed', 1 FROM new_rows) AS changes
        GROUP BY campaign_id, kind HAVING sum(delta) <> 0
        ORDER BY campaign_id, kind
        ON CONFLICT (campaign_id, kind) DO UPDATE SET n = ac.n + EXCLUDED.n;
    ELSE
        UPDATE attempt_counts AS ac SET n = ac.n - gone.n
        FROM (SELECT campaign_id, kind, count(*) AS n FROM (
                  SELECT campaign_id, 'dialed' AS kind FROM old_rows
                  UNION ALL
                  SELECT campaign_id, outcome FROM old_rows WHERE outcome IS NOT NULL
                  UNION ALL
                  SELECT campaign_id, 'disposition:' || disposition FROM old_rows
                  WHERE disposition IS NOT NULL) AS rows
              GROUP BY campaign_id, kind ORDER BY campaign_id, kind) AS gone
        WHERE ac.campaign_id = gone.campaign_id AND ac.kind = gone.kind;
    END IF;
    RETURN NULL;
END $$;

-- Outcomes and "live" (in flight: dialed minus those with an outcome), as before; the
-- dispositions as {"name": n} on their own.
CREATE OR REPLACE FUNCTION campaign_attempt_counts(campaign uuid) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(kind, n) FILTER (WHERE n > 0), '{}')
    FROM (SELECT kind, n FROM attempt_counts
          WHERE campaign_id = campaign AND kind <> 'dialed' AND kind NOT LIKE 'disposition:%'
          UNION ALL
          SELECT 'live', sum(CASE WHEN kind = 'dialed' THEN n ELSE -n END)::bigint
          FROM attempt_counts
          WHERE campaign_id = campaign AND kind NOT LIKE 'disposition:%') AS counts
$$;

CREATE FUNCTION campaign_disposition_counts(campaign uuid) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(substr(kind, 13), n) FILTER (WHERE n > 0), '{}')
    FROM attempt_counts WHERE campaign_id = campaign AND kind LIKE 'disposition:%'
$$;

-- Is window `win` open at `at` in zone `zone`? One expression with no FROM, so the
-- planner inlines it where it is called (the claim calls it for every zone of the
-- campaign: a SQL function that is not inlined is planned again at every claim).
CREATE FUNCTION window_open_in(win jsonb, zone text, at timestamptz) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (win -> 'days') ? (ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])
                                 [extract(isodow FROM at AT TIME ZONE zone)::int]
           AND (at AT TIME ZONE zone)::time >= (win ->> 'start')::time
           AND (win ->> 'end' = '24:00' OR (at AT TIME ZONE zone)::time < (win ->> 'end')::time)
$$;

-- Is window `win` open at `at` in every zone of `zones` (a NULL window always is)?
-- (The claim spells this out with window_open_in, which it can inline.)
CREATE FUNCTION window_open(win jsonb, zones text[], at timestamptz) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT win IS NULL OR NOT EXISTS (SELECT 1 FROM unnest(zones) AS zone
                                      WHERE NOT window_open_in(win, zone, at))
$$;

-- The first time at or after `at` at which window `win` is open in zone `zone` (NULL:
-- the window has no day).
CREATE FUNCTION window_next_open_in(win jsonb, zone text, at timestamptz)
    RETURNS timestamptz LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    local timestamp := at AT TIME ZONE zone;
    day date := local::date;
    opens timestamp;
    closes timestamp;
BEGIN
    FOR i IN 0..7 LOOP
        IF (win -> 'days') ? (ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'])
                                 [extract(isodow FROM day)::int] THEN
            opens := day + (win ->> 'start')::time;
            closes := CASE WHEN win ->> 'end' = '24:00' THEN day + 1
                           ELSE day + (win ->> 'end')::time END;
            IF local < closes THEN
                IF local >= opens THEN
                    RETURN at;
                END IF;
                RETURN opens AT TIME ZONE zone;
            END IF;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN NULL;
END $$;

-- The first time at or after `at` at which window `win` is open in every zone of
-- `zones`: `at` itself with no window; NULL when the zones share no open time within
-- a few weeks (a window of 09:00-12:00 in zones twelve hours apart), so such contacts
-- wait until the campaign is stopped.
CREATE FUNCTION window_next_open(win jsonb, zones text[], at timestamptz)
    RETURNS timestamptz LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
DECLARE
    candidate timestamptz := at;
    latest timestamptz;
    unknown boolean;
BEGIN
    IF win IS NULL THEN
        RETURN at;
    END IF;
    -- Each closed zone stays closed until its next opening: none of them is open
    -- before the latest of those, so jump there and look again.
    FOR i IN 1..64 LOOP
        SELECT max(next), bool_or(next IS NULL) INTO latest, unknown
        FROM (SELECT window_next_open_in(win, zone, candidate) AS next
              FROM unnest(zones) AS zone) AS nexts;
        IF unknown THEN
            RETURN NULL;
        END IF;
        IF latest IS NULL OR latest = candidate THEN
            RETURN candidate;
        END IF;
        candidate := latest;
    END LOOP;
    RETURN NULL;
END $$;

-- Attempts in all that outcome `kind` allows a contact under `policy` (at most 6).
CREATE FUNCTION retry_max_attempts(policy jsonb, kind text, retries integer)
    RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(6, coalesce((policy -> kind ->> 'max_attempts')::int, 1 + retries))
$$;

-- Seconds after a call with outcome `kind` ends before the next attempt is due.
CREATE FUNCTION retry_delay_seconds(policy jsonb, kind text, delay integer)
    RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce((policy -> kind ->> 'delay_seconds')::int, delay)
$$;

-- The most attempts any outcome allows a contact of the campaign (the claim's cap; a
-- callback the agent asked for may go up to 6).
CREATE FUNCTION campaign_attempts_max(policy jsonb, retries integer)
    RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(6, greatest(1 + retries,
                             (SELECT max((entry ->> 'max_attempts')::int)
                              FROM jsonb_each(policy) AS rules(kind, entry))))
$$;

-- Each campaign's cap on a contact's attempts, kept with it (the claim reads it at every
-- claim: a column costs nothing, the function a plan).
ALTER TABLE campaigns ADD COLUMN attempts_max integer
    GENERATED ALWAYS AS (campaign_attempts_max(retry_policy, retries_per_contact)) STORED;

-- The window that applies to campaign `campaign`: its own, else its account's.
CREATE FUNCTION campaign_window(campaign uuid) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(cp.calling_window, a.calling_window)
    FROM campaigns cp JOIN accounts a ON a.id = cp.account_id
    WHERE cp.id = campaign
$$;

-- The campaign's contacts that are due at `at` (new ones, and retries whose time has
-- come) but outside their window: what snapshots and the campaign show.
CREATE FUNCTION campaign_waiting_for_window(campaign uuid, at timestamptz) RETURNS bigint
    LANGUAGE sql STABLE AS $$
    -- The window read once (not once per zone: this runs at every snapshot tick); none:
    -- no zone is closed.
    WITH w AS (
        SELECT campaign_window(campaign) AS win
    ), closed AS (
        SELECT z.zone FROM campaign_zones z, w
        WHERE z.campaign_id = campaign AND w.win IS NOT NULL
          AND NOT window_open(w.win, z.names, at)
    )
    SELECT (SELECT coalesce(sum(n), 0) FROM contact_counts
            WHERE campaign_id = campaign AND status = 'pending'
              AND zone IN (SELECT zone FROM closed))::bigint
         + (SELECT count(*) FROM contacts
            WHERE campaign_id = campaign AND status = 'retry_pending'
              AND next_attempt_at <= at AND zone IN (SELECT zone FROM closed))
$$;

-- The first time after `at` at which a zone of the campaign that is closed now and has
-- contacts waiting (new or retries) opens: when its actor next has something to claim.
CREATE FUNCTION campaign_next_window_open(campaign uuid, at timestamptz)
    RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT min(window_next_open(w.win, z.names, at))
    FROM campaign_zones z, (SELECT campaign_window(campaign) AS win) AS w
    WHERE z.campaign_id = campaign AND w.win IS NOT NULL
      AND NOT window_open(w.win, z.names, at)
      AND EXISTS (SELECT 1 FROM contact_counts cc
                  WHERE cc.campaign_id = campaign AND cc.zone = z.zone AND cc.n > 0
                    AND cc.status IN ('pending', 'retry_pending'))
$$;
