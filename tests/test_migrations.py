"""Forward-only migrations against a real PostgreSQL: tables, the record, idempotence,
concurrent migrators, and refusing a migration whose file changed after it was applied."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
import trio
import trio_asyncio

from gateway.db import Database, InvalidValue
from gateway.migrations import MigrationError, available, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
TABLES = {"accounts", "api_keys", "agents", "phone_numbers", "campaigns", "contacts",
          "attempts", "contact_counts", "attempt_counts", "schema_migrations"}


# An account with an agent and a number, and its running campaign $1 (retries_per_contact
# 1), as the CTE `campaign`: the start of a statement that adds its contacts.
WITH_RUNNING_CAMPAIGN = """
    WITH account AS (
        INSERT INTO accounts (name, concurrent_max, calls_per_minute)
        VALUES ('old', 10, 60) RETURNING id
    ), agent AS (
        INSERT INTO agents (account_id, name) SELECT id, 'a' FROM account RETURNING id
    ), number AS (
        INSERT INTO phone_numbers (account_id, number)
        SELECT id, '+12025550143' FROM account RETURNING id
    ), campaign AS (
        INSERT INTO campaigns (id, account_id, name, agent_id, phone_number_id, status,
                               max_concurrent_calls, retries_per_contact,
                               retry_delay_seconds, contacts_total)
        SELECT $1, account.id, 'c', agent.id, number.id, 'running', 1, 1, 60, 0
        FROM account, agent, number RETURNING id
    )"""


@pytest.fixture
async def empty_db(aio_loop, empty_database_url):
    database = await Database.open(empty_database_url, min_size=1, max_size=2)
    yield database
    with trio.CancelScope(shield=True), trio.move_on_after(10):
        await database.close()


async def query(url: str, sql: str, *args, method: str = "fetch"):
    """One statement over a direct asyncpg connection (not the code under test)."""

    async def run():
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await getattr(conn, method)(sql, *args)
        finally:
            await conn.close()

    return await trio_asyncio.aio_as_trio(run)()


async def tables(url: str) -> set[str]:
    rows = await query(url, "SELECT table_name FROM information_schema.tables "
                            "WHERE table_schema = 'public'")
    return {row["table_name"] for row in rows}


def test_migration_files_are_numbered_from_one():
    found = available()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "initial"
    text = (MIGRATIONS_DIR / "0001_initial.sql").read_text(encoding="utf-8")
    assert found[0].checksum == hashlib.sha256(text.encode()).hexdigest()


ALL = list(range(1, len(available()) + 1))


async def test_empty_database_gets_every_table(empty_db, empty_database_url):
    assert await tables(empty_database_url) == set()
    assert await migrate(empty_db) == ALL
    assert TABLES <= await tables(empty_database_url)
    rows = await query(empty_database_url, "SELECT version, name, checksum, applied_at "
                                           "FROM schema_migrations ORDER BY version")
    assert len(rows) == len(ALL)
    expected = hashlib.sha256((MIGRATIONS_DIR / "0001_initial.sql").read_bytes()).hexdigest()
    assert (rows[0]["version"], rows[0]["name"], rows[0]["checksum"]) == (1, "initial", expected)
    assert all(row["applied_at"] is not None for row in rows)


async def test_second_migrate_applies_nothing(empty_db, empty_database_url):
    assert await migrate(empty_db) == ALL
    before = await query(empty_database_url, "SELECT * FROM schema_migrations")
    assert await migrate(empty_db) == []
    assert await query(empty_database_url, "SELECT * FROM schema_migrations") == before


async def test_migrate_on_migrated_database_applies_nothing(db, database_url):
    assert await migrate(db) == []
    assert await query(database_url, "SELECT count(*) FROM schema_migrations",
                       method="fetchval") == len(available())


async def test_concurrent_migrators_apply_once(aio_loop, empty_database_url):
    first = await Database.open(empty_database_url, min_size=1, max_size=1)
    second = await Database.open(empty_database_url, min_size=1, max_size=1)
    results: dict[str, list[int]] = {}

    async def run(label: str, database: Database) -> None:
        results[label] = await migrate(database)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "first", first)
            nursery.start_soon(run, "second", second)
    finally:
        with trio.CancelScope(shield=True):
            await first.close()
            await second.close()
    # Both succeeded, and each migration was applied by exactly one of them (each file
    # takes the lock in its own transaction, so they may share the work).
    assert sorted(results["first"] + results["second"]) == ALL
    rows = await query(empty_database_url,
                       "SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in rows] == ALL
    assert TABLES <= await tables(empty_database_url)


async def test_changed_migration_is_refused(db, database_url):
    await query(database_url, "UPDATE schema_migrations SET checksum = 'x' WHERE version = 1",
                method="execute")
    with pytest.raises(MigrationError, match="changed") as exc:
        await migrate(db)
    assert "0001_initial" in str(exc.value)
    # Nothing was rewritten: the tampered record stays as it is.
    assert await query(database_url, "SELECT checksum FROM schema_migrations WHERE version = 1",
                       method="fetchval") == "x"


# --- a private migrations folder (gateway.migrations reads sql_dir()/migrations) ------------


@pytest.fixture
def migrations_dir(tmp_path, monkeypatch):
    folder = tmp_path / "migrations"
    folder.mkdir()
    monkeypatch.setattr("gateway.migrations.sql_dir", lambda: tmp_path)
    return folder


async def test_failing_migration_leaves_nothing_behind(migrations_dir, empty_db,
                                                       empty_database_url):
    (migrations_dir / "0001_one.sql").write_text("CREATE TABLE one (x int);\n")
    (migrations_dir / "0002_two.sql").write_text(
        "CREATE TABLE two (x int);\nINSERT INTO two VALUES ('not a number');\n")
    with pytest.raises(InvalidValue) as failed:  # the database module's word for it
        await migrate(empty_db)
    assert isinstance(failed.value.__cause__, asyncpg.DataError)
    # 0001 committed in its own transaction; 0002 rolled back completely.
    assert await tables(empty_database_url) == {"one", "schema_migrations"}
    rows = await query(empty_database_url, "SELECT version FROM schema_migrations")
    assert [row["version"] for row in rows] == [1]
    # Fixed file: the next run applies only 0002.
    (migrations_dir / "0002_two.sql").write_text("CREATE TABLE two (x int);\n")
    assert await migrate(empty_db) == [2]
    assert await tables(empty_database_url) == {"one", "two", "schema_migrations"}


def test_misnamed_migration_file(migrations_dir):
    (migrations_dir / "0001_One.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match=r"0001_One\.sql"):
        available()


def test_gap_in_versions(migrations_dir):
    (migrations_dir / "0001_one.sql").write_text("SELECT 1;\n")
    (migrations_dir / "0003_three.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="without gaps"):
        available()


async def test_0002_keeps_existing_contacts_and_counts_them(tmp_path, monkeypatch, empty_db,
                                                           empty_database_url):
    """A database with campaigns made under 0001 upgrades in place: contacts keep their
    fields, counts are backfilled, and deleting a campaign still deletes its contacts."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    monkeypatch.setattr("gateway.migrations.sql_dir", lambda: tmp_path)
    (folder / "0001_initial.sql").write_bytes((MIGRATIONS_DIR / "0001_initial.sql").read_bytes())
    assert await migrate(empty_db) == [1]
    campaign = uuid.UUID("00000000-0000-4000-8000-000000000001")
    await query(empty_database_url, WITH_RUNNING_CAMPAIGN + """
        INSERT INTO contacts (campaign_id, seq, row_number, phone_number, custom_fields, status)
        SELECT campaign.id, s, s + 1, '+1202555010' || s, jsonb_build_object('name', 'n' || s),
               CASE WHEN s = 0 THEN 'completed' ELSE 'pending' END
        FROM campaign, generate_series(0, 2) AS s""", campaign, method="execute")
    await query(empty_database_url, """
        INSERT INTO attempts (account_id, campaign_id, contact_id, attempt, phone_number,
                              outcome)
        SELECT cp.account_id, cp.id, c.id, 1, c.phone_number, 'answered'
        FROM contacts c JOIN campaigns cp ON cp.id = c.campaign_id WHERE c.seq = 0""",
                method="execute")
    (folder / "0002_contacts_at_copy_speed.sql").write_bytes(
        (MIGRATIONS_DIR / "0002_contacts_at_copy_speed.sql").read_bytes())
    assert await migrate(empty_db) == [2]

    counts = await query(empty_database_url,
                         "SELECT status, n FROM contact_counts WHERE campaign_id = $1", campaign)
    assert {row["status"]: row["n"] for row in counts} == {"completed": 1, "pending": 2}
    fields = await query(empty_database_url, "SELECT custom_fields::text AS f FROM contacts "
                                             "ORDER BY seq", method="fetch")
    assert [row["f"] for row in fields] == ['{"name": "n0"}', '{"name": "n1"}', '{"name": "n2"}']
    # Attempts now point at their contact by (campaign, seq); the old ids stay as they were.
    attempt = (await query(empty_database_url, "SELECT a.contact_seq, a.contact_id = c.id AS same "
                                               "FROM attempts a JOIN contacts c ON c.seq = 0"))[0]
    assert (attempt["contact_seq"], attempt["same"]) == (0, True)
    # The triggers keep the counts from here on.
    await query(empty_database_url, "UPDATE contacts SET status = 'skipped' "
                                    "WHERE status = 'pending'", method="execute")
    counts = await query(empty_database_url,
                         "SELECT status, n FROM contact_counts WHERE campaign_id = $1 AND n > 0",
                         campaign)
    assert {row["status"]: row["n"] for row in counts} == {"completed": 1, "skipped": 2}
    await query(empty_database_url, "DELETE FROM campaigns", method="execute")
    for table in ("contacts", "attempts"):
        assert await query(empty_database_url, f"SELECT count(*) FROM {table}",
                           method="fetchval") == 0
    assert await query(empty_database_url, "SELECT count(*) FROM contact_counts",
                       method="fetchval") == 0


async def test_0003_counts_existing_attempts_and_keeps_counting(tmp_path, monkeypatch, empty_db,
                                                                 empty_database_url):
    """Attempts made before 0003 are counted by it (those in flight as "live"), and its
    triggers keep the counts exact through results, new attempts and deletion."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    monkeypatch.setattr("gateway.migrations.sql_dir", lambda: tmp_path)
    for name in ("0001_initial.sql", "0002_contacts_at_copy_speed.sql"):
        (folder / name).write_bytes((MIGRATIONS_DIR / name).read_bytes())
    assert await migrate(empty_db) == [1, 2]
    campaign = uuid.UUID("00000000-0000-4000-8000-000000000003")
    await query(empty_database_url, WITH_RUNNING_CAMPAIGN + """
        INSERT INTO contacts (id, campaign_id, seq, row_number, phone_number)
        SELECT gen_random_uuid(), campaign.id, s, s + 1, '+1202555010' || s
        FROM campaign, generate_series(0, 3) AS s""", campaign, method="execute")
    # Contact 0: busy then answered; 1: no_answer; 2: in flight; 3: never dialed.
    await query(empty_database_url, """
        INSERT INTO attempts (account_id, campaign_id, contact_id, contact_seq, attempt,
                              phone_number, outcome)
        SELECT cp.account_id, cp.id, c.id, c.seq, a.attempt, c.phone_number, a.outcome
        FROM (VALUES (0, 1, 'busy'), (0, 2, 'answered'), (1, 1, 'no_answer'), (2, 1, NULL))
             AS a(seq, attempt, outcome)
        JOIN contacts c ON c.seq = a.seq JOIN campaigns cp ON cp.id = c.campaign_id""",
                method="execute")
    (folder / "0003_attempt_counts.sql").write_bytes(
        (MIGRATIONS_DIR / "0003_attempt_counts.sql").read_bytes())
    assert await migrate(empty_db) == [3]

    async def counts() -> dict:
        return json.loads(await query(empty_database_url, "SELECT campaign_attempt_counts($1)",
                                      campaign, method="fetchval"))

    assert await counts() == {"busy": 1, "answered": 1, "no_answer": 1, "live": 1}
    # The call in flight ends; contact 3 is dialed (two attempts in one statement).
    await query(empty_database_url, "UPDATE attempts SET outcome = 'failed' "
                                    "WHERE outcome IS NULL", method="execute")
    await query(empty_database_url, """
        INSERT INTO attempts (account_id, campaign_id, contact_id, contact_seq, attempt,
                              phone_number)
        SELECT cp.account_id, cp.id, c.id, c.seq, a.attempt, c.phone_number
        FROM (VALUES (3, 1), (1, 2)) AS a(seq, attempt)
        JOIN contacts c ON c.seq = a.seq JOIN campaigns cp ON cp.id = c.campaign_id""",
                method="execute")
    assert await counts() == {"busy": 1, "answered": 1, "no_answer": 1, "failed": 1,
                              "live": 2}
    assert await query(empty_database_url, "SELECT n FROM attempt_counts WHERE kind = 'dialed'",
                       method="fetchval") == 6
    await query(empty_database_url, "DELETE FROM attempts WHERE contact_seq = 0",
                method="execute")
    assert await counts() == {"no_answer": 1, "failed": 1, "live": 2}
    await query(empty_database_url, "DELETE FROM campaigns", method="execute")
    assert await query(empty_database_url, "SELECT count(*) FROM attempt_counts",
                       method="fetchval") == 0


async def test_0005_moves_shared_contact_data_to_the_campaign(tmp_path, monkeypatch, empty_db,
                                                               empty_database_url):
    """Contacts made before 0005 keep their ids and fields as the API shows them: ids that
    are the campaign prefix + seq are computed from then on, random ones (from before
    0002) stay stored; fields become arrays named by the campaign. Contacts inserted from
    now on are counted by their import, not by a trigger."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    monkeypatch.setattr("gateway.migrations.sql_dir", lambda: tmp_path)
    names = sorted(p.name for p in MIGRATIONS_DIR.glob("000[1-4]_*.sql"))
    for name in names:
        (folder / name).write_bytes((MIGRATIONS_DIR / name).read_bytes())
    assert await migrate(empty_db) == [1, 2, 3, 4]
    made, legacy = (uuid.UUID("01900000-0000-7000-8000-00000000000a"),
                    uuid.UUID("01900000-0000-7000-8000-00000000000b"))
    # What the importer made since 0002 (one prefix, then the seq), and random ids.
    for campaign, ids in ((made, "('0190abcd-ef01-7234-8567-89ab' || lpad(to_hex(s), 8, '0'))"
                                 "::uuid"),
                          (legacy, "gen_random_uuid()")):
        await query(empty_database_url, WITH_RUNNING_CAMPAIGN + f"""
            INSERT INTO contacts (id, campaign_id, seq, row_number, phone_number,
                                  custom_fields)
            SELECT {ids}, campaign.id, s, s + 1,
                   '+1202555010' || s,
                   json_build_object('first_name', 'n' || s, 'city', CASE WHEN s = 1
                                     THEN 'Köln, "Mitte"' ELSE '' END)
            FROM campaign, generate_series(0, 2) AS s""", campaign, method="execute")
    before = await query(empty_database_url, "SELECT campaign_id, seq, id, custom_fields::text "
                                             "AS f FROM contacts ORDER BY campaign_id, seq")
    (folder / "0005_contacts_leaner_rows.sql").write_bytes(
        (MIGRATIONS_DIR / "0005_contacts_leaner_rows.sql").read_bytes())
    assert await migrate(empty_db) == [5]

    shown = await query(empty_database_url, """
        SELECT c.campaign_id, c.seq, c.id IS NULL AS computed,
               coalesce(c.id, contact_id(cp.contact_id_prefix, c.seq)) AS id,
               contact_fields(cp.custom_field_names, c.custom_fields)::text AS f
        FROM contacts c JOIN campaigns cp ON cp.id = c.campaign_id
        ORDER BY c.campaign_id, c.seq""")
    assert [(r["campaign_id"], r["seq"], r["id"]) for r in shown] == \
        [(r["campaign_id"], r["seq"], r["id"]) for r in before]
    assert [r["computed"] for r in shown] == [True] * 3 + [False] * 3
    assert [json.loads(r["f"]) for r in shown] == [json.loads(r["f"]) for r in before]
    assert json.loads(shown[1]["f"]) == {"first_name": "n1", "city": 'Köln, "Mitte"'}
    fields = await query(empty_database_url, "SELECT custom_fields::text AS f FROM contacts "
                                             "WHERE seq = 1 ORDER BY campaign_id")
    assert [json.loads(r["f"]) for r in fields] == [["n1", 'Köln, "Mitte"']] * 2
    assert await query(empty_database_url, "SELECT custom_field_names FROM campaigns "
                                           "WHERE id = $1", made, method="fetchval") == \
        ["first_name", "city"]
    # Updates and deletes are still counted by the triggers; an insert is not (the import
    # counts what its COPY wrote: test_campaigns_create checks that).
    await query(empty_database_url, "UPDATE contacts SET status = 'skipped' WHERE seq = 0",
                method="execute")
    counts = await query(empty_database_url, "SELECT campaign_id, status, n FROM contact_counts "
                                             "WHERE n > 0 ORDER BY campaign_id, status")
    assert [(r["campaign_id"], r["status"], r["n"]) for r in counts] == [
        (made, "pending", 2), (made, "skipped", 1), (legacy, "pending", 2),
        (legacy, "skipped", 1)]
    await query(empty_database_url, "DELETE FROM campaigns", method="execute")
    assert await query(empty_database_url, "SELECT count(*) FROM contact_counts WHERE n <> 0",
                       method="fetchval") == 0


async def test_0006_adds_the_agent_leg_and_counts_agent_unavailable(tmp_path, monkeypatch,
                                                                     empty_db,
                                                                     empty_database_url):
    """Attempts made before 0006 keep their outcomes, with no agent leg recorded; from then
    on an attempt can be agent_unavailable (counted by the 0003 triggers like any outcome)
    and records its agent leg; who hung up is one of the three words. Agents lose their
    media_address (the agent leg carries the trunk's SDP) and gain max_concurrent_calls:
    NULL (no cap) for the agents there were, at least 1 when set."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    monkeypatch.setattr("gateway.migrations.sql_dir", lambda: tmp_path)
    for path in sorted(MIGRATIONS_DIR.glob("000[1-5]_*.sql")):
        (folder / path.name).write_bytes(path.read_bytes())
    assert await migrate(empty_db) == [1, 2, 3, 4, 5]
    campaign = uuid.UUID("00000000-0000-4000-8000-000000000006")
    await query(empty_database_url, WITH_RUNNING_CAMPAIGN + """
        INSERT INTO contacts (id, campaign_id, seq, row_number, phone_number)
        SELECT gen_random_uuid(), campaign.id, s, s + 1, '+1202555010' || s
        FROM campaign, generate_series(0, 2) AS s""", campaign, method="execute")
    insert = """
        INSERT INTO attempts (account_id, campaign_id, contact_id, contact_seq, attempt,
                              phone_number, outcome)
        SELECT cp.account_id, cp.id, c.id, c.seq, a.attempt, c.phone_number, a.outcome
        FROM (VALUES {}) AS a(seq, attempt, outcome)
        JOIN contacts c ON c.seq = a.seq JOIN campaigns cp ON cp.id = c.campaign_id"""
    await query(empty_database_url, insert.format("(0, 1, 'answered'), (1, 1, 'busy')"),
                method="execute")
    with pytest.raises(asyncpg.CheckViolationError):  # not a word before 0006
        await query(empty_database_url, insert.format("(2, 1, 'agent_unavailable')"),
                    method="execute")
    await query(empty_database_url, "UPDATE agents SET media_address = '10.0.0.9'",
                method="execute")
    (folder / "0006_agent_leg.sql").write_bytes(
        (MIGRATIONS_DIR / "0006_agent_leg.sql").read_bytes())
    assert await migrate(empty_db) == [6]

    columns = {row["column_name"] for row in await query(
        empty_database_url, "SELECT column_name FROM information_schema.columns "
                            "WHERE table_name = 'agents'")}
    assert "media_address" not in columns and "max_concurrent_calls" in columns
    assert [row["max_concurrent_calls"] for row in await query(
        empty_database_url, "SELECT max_concurrent_calls FROM agents")] == [None]
    for bad in (0, -1):
        with pytest.raises(asyncpg.CheckViolationError):
            await query(empty_database_url, "UPDATE agents SET max_concurrent_calls = $1",
                        bad, method="execute")
    await query(empty_database_url, "UPDATE agents SET max_concurrent_calls = 1",
                method="execute")
    assert await query(empty_database_url, "SELECT max_concurrent_calls FROM agents",
                       method="fetchval") == 1

    old = await query(empty_database_url, """
        SELECT outcome, connected_at, hangup_by, agent_sip_status, agent_sip_call_id
        FROM attempts ORDER BY contact_seq""")
    assert [tuple(row) for row in old] == [("answered", None, None, None, None),
                                           ("busy", None, None, None, None)]
    await query(empty_database_url, insert.format("(2, 1, 'agent_unavailable'), (1, 2, NULL)"),
                method="execute")
    await query(empty_database_url, """
        UPDATE attempts SET outcome = 'agent_unavailable', hangup_by = 'gateway',
                            agent_sip_status = 486, agent_sip_call_id = 'agent-leg-1'
        WHERE outcome IS NULL""", method="execute")
    counts = json.loads(await query(empty_database_url, "SELECT campaign_attempt_counts($1)",
                                    campaign, method="fetchval"))
    assert counts == {"answered": 1, "busy": 1, "agent_unavailable": 2}
    row = (await query(empty_database_url, "SELECT hangup_by, agent_sip_status, "
                                           "agent_sip_call_id FROM attempts WHERE attempt = 2"))[0]
    assert tuple(row) == ("gateway", 486, "agent-leg-1")
    with pytest.raises(asyncpg.CheckViolationError):
        await query(empty_database_url, "UPDATE attempts SET hangup_by = 'nobody'",
                    method="execute")
    with pytest.raises(asyncpg.CheckViolationError):  # the old words are all still there
        await query(empty_database_url, "UPDATE attempts SET outcome = 'unheard_of' "
                                        "WHERE attempt = 2", method="execute")
    await query(empty_database_url, "UPDATE attempts SET outcome = 'interrupted', "
                                    "connected_at = now() WHERE contact_seq = 0",
                method="execute")
    counts = json.loads(await query(empty_database_url, "SELECT campaign_attempt_counts($1)",
                                    campaign, method="fetchval"))
    assert counts == {"interrupted": 1, "busy": 1, "agent_unavailable": 2}


def test_contact_id_is_the_prefix_and_the_seq():
    """The SQL function and gateway.ids agree on the layout: 96 bits of UUIDv7, then seq."""
    from gateway.ids import contact_id_prefix

    prefix = contact_id_prefix()
    assert prefix.version == 7 and prefix.int & 0xFFFF_FFFF == 0
    assert contact_id_prefix().int >> 32 != prefix.int >> 32


async def test_contact_id_in_sql_puts_the_seq_in_the_last_32_bits(db, database_url):
    prefix = uuid.UUID("0190abcd-ef01-7234-8567-89ab00000000")
    for seq in (0, 1, 255, 65_536, 2**31 - 1):
        assert await query(database_url, "SELECT contact_id($1, $2)", prefix, seq,
                           method="fetchval") == uuid.UUID(int=prefix.int | seq)


def test_contacts_are_inserted_by_the_import_only():
    """No trigger counts inserted contacts (0005): the import's COPY and a rerun's copy are
    the statements that insert them, and each counts what it writes (a rerun in the same
    statement). Another writer would skew the counts that campaign reads, snapshots and
    completion rely on; it must count what it writes, and be listed here."""
    root = MIGRATIONS_DIR.parent.parent
    writers = []
    for path in [*root.glob("sql/queries/*.sql"), *root.glob("gateway/**/*.py")]:
        text = path.read_text().lower()
        if "insert into contacts" in text or 'copy_chunks("contacts"' in text:
            writers.append(path.relative_to(root).as_posix())
    assert sorted(writers) == ["gateway/store/campaigns.py", "sql/queries/rerun.sql"]
