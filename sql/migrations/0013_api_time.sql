-- A time as the API's JSON writes it, in one definition: UTC, ISO 8601 with a "Z",
-- microseconds when there are any (`2026-12-03T09:47:30.442889Z`, `2026-12-03T09:47:30Z`),
-- the form pydantic gives the API's objects. The exports wrote it inline in every column;
-- webhook_time (0009) gave six zeros for a whole second, so a payload's time could differ
-- from the same object's on its page. webhook_time now is this one (the payload functions
-- of 0011 call it by that name).
CREATE FUNCTION api_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN replace(to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z');

CREATE OR REPLACE FUNCTION webhook_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN api_time(t);
