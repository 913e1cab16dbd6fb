"""Forward-only migrations against a real PostgreSQL: tables, the record, idempotence,
concurrent migrators, and refusing a migration whose file changed after it was applied."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import asyncpg
import pytest
import trio
import trio_asyncio

from conftest import ADMIN_URL
from gateway.db import Database
from gateway.migrations import MigrationError, available, migrate

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
TABLES = {"accounts", "api_keys", "agents", "phone_numbers", "campaigns", "contacts",
          "attempts", "schema_migrations"}


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def empty_database_url():
    """A brand-new database with nothing in it (not cloned from the migrated template)."""
    name = f"gateway_empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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


async def test_empty_database_gets_every_table(empty_db, empty_database_url):
    assert await tables(empty_database_url) == set()
    assert await migrate(empty_db) == [1]
    assert TABLES <= await tables(empty_database_url)
    rows = await query(empty_database_url,
                       "SELECT version, name, checksum, applied_at FROM schema_migrations")
    assert len(rows) == 1
    expected = hashlib.sha256((MIGRATIONS_DIR / "0001_initial.sql").read_bytes()).hexdigest()
    assert (rows[0]["version"], rows[0]["name"], rows[0]["checksum"]) == (1, "initial", expected)
    assert rows[0]["applied_at"] is not None


async def test_second_migrate_applies_nothing(empty_db, empty_database_url):
    assert await migrate(empty_db) == [1]
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
    # Both succeeded; exactly one of them applied version 1.
    assert sorted(results.values()) == [[], [1]]
    rows = await query(empty_database_url, "SELECT version FROM schema_migrations")
    assert [row["version"] for row in rows] == [1]
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
    with pytest.raises(asyncpg.DataError):
        await migrate(empty_db)
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
    with pytest.raises(MigrationError, match="0001_One.sql"):
        available()


def test_gap_in_versions(migrations_dir):
    (migrations_dir / "0001_one.sql").write_text("SELECT 1;\n")
    (migrations_dir / "0003_three.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="without gaps"):
        available()
