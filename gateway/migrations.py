"""Forward-only schema migrations from ``sql/migrations/NNNN_name.sql``.

Each file runs in its own transaction and is recorded in ``schema_migrations`` with a
checksum, under an advisory lock so two gateways starting at once cannot both apply it. A
recorded migration whose file changed afterwards is an error: history is never rewritten,
a fix is a new file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable

import attrs

from gateway.db import Database, Tx
from gateway.logs import get_logger
from gateway.sql import sql_dir

log = get_logger(__name__)
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    pass


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1..N without gaps, found {versions}")
    return found


async def migrate(db: Database) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    applied_now: list[int] = []
    for migration in available():
        if await db.transaction(_applier(migration)):
            log.info("migration.applied", version=migration.version, name=migration.name)
            applied_now.append(migration.version)
    return applied_now


def _applier(migration: Migration) -> Callable[[Tx], Awaitable[bool]]:
    async def apply(tx: Tx) -> bool:
        await tx.execute("migrations.lock")
        await tx.execute("migrations.create_table")
        recorded = await tx.fetchrow("migrations.get", migration.version)
        if recorded is not None:
            if recorded["checksum"] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} changed after it was "
                    "applied; add a new migration instead of editing an applied one")
            return False
        await tx.execute_script(migration.sql)
        await tx.execute("migrations.record", migration.version, migration.name,
                         migration.checksum)
        return True

    return apply
