-- Contact rows carry only what differs from contact to contact.
--
-- A 100k-row import spent its database time mostly reading and storing bytes that every
-- contact of a campaign shares (COPY of a 100k-row payload into contacts, 3 custom
-- columns: 0.53 s before, 0.34 s after on the same machine; `python -m tests.bench --only
-- ingest` compares the whole upload with `psql \copy`):
-- * the contact id: the importer made it as the campaign's id prefix (96 bits of a UUIDv7)
--   followed by the contact's seq (32 bits), and stored all 128 bits in every row. The
--   prefix is now a column of the campaign and the id is computed when read
--   (contact_id() below). Rows whose stored id is not prefix + seq (contacts imported
--   before 0002, which had random ids) keep it: `contacts.id` is NULL exactly when the id
--   is the computed one;
-- * the custom field names: custom_fields was a JSON object per contact, the CSV header
--   repeated in every row. The header is now the campaign's custom_field_names and a
--   contact's custom_fields is the JSON array of its values in that order
--   (contact_fields() below turns the two back into the object the API shows);
-- * the count trigger on INSERT: it collected every new row into a transition table to
--   count them. Contacts are inserted by one statement only, the import's COPY, whose
--   command tag is the exact number of rows written; the import adds that number to
--   contact_counts itself, in the same transaction (campaigns.sql: set_totals). Updates
--   and deletes are still counted by the triggers of 0002.

ALTER TABLE campaigns ADD COLUMN contact_id_prefix uuid;
ALTER TABLE campaigns ADD COLUMN custom_field_names text[] NOT NULL DEFAULT '{}';

-- The id of the contact at `seq` of a campaign whose ids start with `prefix` (its last
-- 32 bits zero): the prefix with the seq in its last four bytes.
CREATE FUNCTION contact_id(prefix uuid, seq integer) RETURNS uuid
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(overlay(uuid_send(prefix) PLACING int4send(seq) FROM 13 FOR 4), 'hex')::uuid
$$;

-- A contact's custom fields as the API shows them: {"name": "value", ...} in header order.
CREATE FUNCTION contact_fields(names text[], field_values json) RETURNS json
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT json_object(names, ARRAY(SELECT json_array_elements_text(field_values)))
$$;

-- Existing campaigns: the prefix and the names are read off their first contact (every
-- contact of a campaign comes from one file, so they share both).
UPDATE campaigns cp
SET contact_id_prefix = contact_id(first.id, 0),
    custom_field_names = ARRAY(SELECT json_object_keys(first.custom_fields))
FROM contacts first
WHERE first.campaign_id = cp.id AND first.seq = 0;

ALTER TABLE contacts ALTER COLUMN id DROP NOT NULL;
ALTER TABLE contacts ALTER COLUMN id DROP DEFAULT;
ALTER TABLE contacts ALTER COLUMN custom_fields SET DEFAULT '[]';
UPDATE contacts c
SET id = CASE WHEN c.id = contact_id(cp.contact_id_prefix, c.seq) THEN NULL ELSE c.id END,
    custom_fields = to_json(ARRAY(SELECT c.custom_fields ->> name
                                  FROM unnest(cp.custom_field_names) AS name))
FROM campaigns cp
WHERE cp.id = c.campaign_id;

DROP TRIGGER contacts_count_insert ON contacts;
CREATE OR REPLACE FUNCTION contact_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO contact_counts AS cc (campaign_id, status, n)
        SELECT campaign_id, status, sum(delta) FROM (
            SELECT campaign_id, status, -1 AS delta FROM old_rows
            UNION ALL
            SELECT campaign_id, status, 1 FROM new_rows) AS changes
        GROUP BY campaign_id, status HAVING sum(delta) <> 0
        ORDER BY campaign_id, status
        ON CONFLICT (campaign_id, status) DO UPDATE SET n = cc.n + EXCLUDED.n;
    ELSE  -- DELETE (inserts are counted by the import)
        UPDATE contact_counts AS cc SET n = cc.n - gone.n
        FROM (SELECT campaign_id, status, count(*) AS n FROM old_rows
              GROUP BY campaign_id, status ORDER BY campaign_id, status) AS gone
        WHERE cc.campaign_id = gone.campaign_id AND cc.status = gone.status;
    END IF;
    RETURN NULL;
END $$;
