-- Attempts per campaign and outcome, kept by the database like contact_counts (0002).
--
-- Every live-metrics tick of a watched campaign counted its attempts by outcome, and every
-- page of its calls counted them all: a scan that grows with the campaign (~25 ms of
-- PostgreSQL CPU at 100k attempts, every `sse.tick_seconds`; a 1M-contact campaign would
-- pay ten times that). Now both read a few index rows.
--
-- Rows per campaign: kind 'dialed' counts every attempt; one row per outcome counts the
-- attempts that have it. Attempts in flight (no outcome yet) are dialed minus the rest.
-- Keeping "in flight" implicit is what keeps the two dialing statements off each other's
-- rows: the claim (which inserts attempts, then its contacts' counts change) only ever
-- writes 'dialed'; recording results (attempts get outcomes, then contacts change) only
-- writes outcome rows. Had both written an 'in flight' row, a claim holding
-- contact_counts rows and a result statement holding that row could each wait for the
-- other (a deadlock PostgreSQL breaks only after deadlock_timeout). Within one table each
-- trigger takes its rows in (campaign_id, kind) order, as contact_counts does.
CREATE TABLE attempt_counts (
    campaign_id  uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    kind         text NOT NULL,  -- 'dialed' or an outcome
    n            bigint NOT NULL,
    PRIMARY KEY (campaign_id, kind)
);

INSERT INTO attempt_counts (campaign_id, kind, n)
SELECT campaign_id, 'dialed', count(*) FROM attempts GROUP BY campaign_id
UNION ALL
SELECT campaign_id, outcome, count(*) FROM attempts WHERE outcome IS NOT NULL
GROUP BY campaign_id, outcome;

CREATE FUNCTION attempt_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO attempt_counts AS ac (campaign_id, kind, n)
        SELECT campaign_id, kind, count(*) FROM (
            SELECT campaign_id, 'dialed' AS kind FROM new_rows
            UNION ALL
            SELECT campaign_id, outcome FROM new_rows WHERE outcome IS NOT NULL) AS added
        GROUP BY campaign_id, kind ORDER BY campaign_id, kind
        ON CONFLICT (campaign_id, kind) DO UPDATE SET n = ac.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Only outcomes change here ('dialed' nets out unless an attempt changed
        -- campaign, which nothing does).
        INSERT INTO attempt_counts AS ac (campaign_id, kind, n)
        SELECT campaign_id, kind, sum(delta) FROM (
            SELECT campaign_id, outcome AS kind, -1 AS delta FROM old_rows
            WHERE outcome IS NOT NULL
            UNION ALL
            SELECT campaign_id, outcome, 1 FROM new_rows WHERE outcome IS NOT NULL
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
                  SELECT campaign_id, outcome FROM old_rows WHERE outcome IS NOT NULL) AS rows
              GROUP BY campaign_id, kind ORDER BY campaign_id, kind) AS gone
        WHERE ac.campaign_id = gone.campaign_id AND ac.kind = gone.kind;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER attempts_count_insert AFTER INSERT ON attempts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_counts_apply();
CREATE TRIGGER attempts_count_update AFTER UPDATE ON attempts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_counts_apply();
CREATE TRIGGER attempts_count_delete AFTER DELETE ON attempts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_counts_apply();

-- A campaign's attempts by outcome as {"outcome": n}, with "live" for those in flight;
-- kinds with none left out: what live-metrics snapshots show.
CREATE FUNCTION campaign_attempt_counts(campaign uuid) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(kind, n) FILTER (WHERE n > 0), '{}')
    FROM (SELECT kind, n FROM attempt_counts
          WHERE campaign_id = campaign AND kind <> 'dialed'
          UNION ALL
          SELECT 'live', sum(CASE WHEN kind = 'dialed' THEN n ELSE -n END)::bigint
          FROM attempt_counts WHERE campaign_id = campaign) AS counts
$$;

