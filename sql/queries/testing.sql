-- Queries the test suite uses to look at the database directly.

-- name: count_campaigns
SELECT count(*) FROM campaigns;

-- name: count_contacts
SELECT count(*) FROM contacts;
