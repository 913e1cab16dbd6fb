-- New contacts stay out of the status index: an import writes two index entries per
-- contact instead of three.
--
-- Every imported contact is 'pending', and its entry in contacts_campaign_status was about a
-- fifth of the database's share of an upload (COPY of a 100k-row payload into contacts:
-- 0.38 s with it, 0.30 s without; `python -m tests.bench --only ingest`). Nothing needs it:
-- * new contacts are claimed in seq order from the campaign actor's cursor, a bounded
--   window of seqs at a time, which the primary key (campaign_id, seq) serves whatever the
--   planner believes about how many contacts are pending (dialing.sql: claim);
-- * pages of pending contacts walk the same key in seq order;
-- * stopping a campaign skips its pending contacts in one pass over its key range.
-- The other statuses keep their entries: contact pages filter on them. A query that uses
-- the index repeats its predicate (status <> 'pending'), so that a generic plan, which
-- cannot see the status parameter's value, can still use it.
DROP INDEX contacts_campaign_status;
CREATE INDEX contacts_campaign_status ON contacts (campaign_id, status, seq)
    WHERE status <> 'pending';
