-- Contacts are written at COPY speed, and their counts by status are kept by the database.
--
-- A 100k-row import spent most of its database time on per-row work that bought nothing
-- the importer does not already guarantee (measured with `python -m tests.bench --only
-- ingest`, COPY of the same payload: 1.3 s before):
-- * the foreign key to campaigns ran one check per row. Contacts are only ever written by
--   the transaction that inserts their campaign first; deleting a campaign deletes its
--   contacts (trigger below), and the contact_counts rows that every contact statement
--   writes reference campaigns, so a statement writing contacts of a missing campaign
--   still fails, once per statement instead of once per row;
-- * UNIQUE (campaign_id, phone_number) placed every row at a random index page. The
--   importer rejects duplicates on the E.164 form before COPY (reported row by row);
-- * two unique keys per row: a contact is now keyed by (campaign_id, seq), its place in
--   its campaign's import, and attempts point at it that way. The API's contact `id`
--   stays a column (UUIDv7 layout, made by the importer, unique by construction) without
--   an index of its own: nothing looks a contact up by it;
-- * jsonb parsing: custom_fields is json, kept as written (which also keeps the CSV's
--   column order). Nothing queries inside it.

ALTER TABLE attempts ADD COLUMN contact_seq integer;
UPDATE attempts a SET contact_seq = c.seq FROM contacts c WHERE c.id = a.contact_id;
ALTER TABLE attempts ALTER COLUMN contact_seq SET NOT NULL;
ALTER TABLE attempts DROP CONSTRAINT attempts_contact_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_contact_id_attempt_key;
ALTER TABLE contacts DROP CONSTRAINT contacts_pkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_campaign_id_seq_key;
ALTER TABLE contacts ADD PRIMARY KEY (campaign_id, seq);
-- What made a double dial impossible, on the new key: one row per (contact, attempt number).
ALTER TABLE attempts ADD CONSTRAINT attempts_contact_attempt_key
    UNIQUE (campaign_id, contact_seq, attempt);
ALTER TABLE attempts ADD CONSTRAINT attempts_contact_fkey
    FOREIGN KEY (campaign_id, contact_seq) REFERENCES contacts (campaign_id, seq)
    ON DELETE CASCADE;

ALTER TABLE contacts DROP CONSTRAINT contacts_campaign_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_campaign_id_phone_number_key;
ALTER TABLE contacts ALTER COLUMN custom_fields DROP DEFAULT;
ALTER TABLE contacts ALTER COLUMN custom_fields TYPE json USING custom_fields::json;
ALTER TABLE contacts ALTER COLUMN custom_fields SET DEFAULT '{}';

-- Contacts per (campaign, status), kept exact by statement-level triggers on contacts:
-- reading a campaign's counts is six index rows instead of a scan of its contacts (a
-- 100k-contact campaign took ~20 ms per read, on every GET, snapshot tick and progress
-- check). Each trigger applies its deltas in (campaign_id, status) order, so two
-- transactions that both touch counts take the row locks in one order and cannot
-- deadlock on them.
CREATE TABLE contact_counts (
    campaign_id  uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    status       text NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (campaign_id, status)
);

INSERT INTO contact_counts (campaign_id, status, n)
SELECT campaign_id, status, count(*) FROM contacts GROUP BY campaign_id, status;

-- A campaign's contacts by status as {"status": n}, statuses with none left out: what
-- campaign reads and live-metrics snapshots show.
CREATE FUNCTION campaign_contact_counts(campaign uuid) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM contact_counts
    WHERE campaign_id = campaign AND n > 0
$$;

CREATE FUNCTION contact_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO contact_counts AS cc (campaign_id, status, n)
        SELECT campaign_id, status, count(*) FROM new_rows
        GROUP BY campaign_id, status ORDER BY campaign_id, status
        ON CONFLICT (campaign_id, status) DO UPDATE SET n = cc.n + EXCLUDED.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO contact_counts AS cc (campaign_id, status, n)
        SELECT campaign_id, status, sum(delta) FROM (
            SELECT campaign_id, status, -1 AS delta FROM old_rows
            UNION ALL
            SELECT campaign_id, status, 1 FROM new_rows) AS changes
        GROUP BY campaign_id, status HAVING sum(delta) <> 0
        ORDER BY campaign_id, status
        ON CONFLICT (campaign_id, status) DO UPDATE SET n = cc.n + EXCLUDED.n;
    ELSE
        UPDATE contact_counts AS cc SET n = cc.n - gone.n
        FROM (SELECT campaign_id, status, count(*) AS n FROM old_rows
              GROUP BY campaign_id, status ORDER BY campaign_id, status) AS gone
        WHERE cc.campaign_id = gone.campaign_id AND cc.status = gone.status;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_count_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_apply();
CREATE TRIGGER contacts_count_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_apply();
CREATE TRIGGER contacts_count_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contact_counts_apply();

-- What the dropped foreign key's ON DELETE CASCADE did.
CREATE FUNCTION campaigns_delete_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contacts WHERE campaign_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;

CREATE TRIGGER campaigns_delete_contacts AFTER DELETE ON campaigns
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_delete_contacts();
