"""``sql/schema.sql`` is the schema the migrations make.

Regenerate it with ``python -m tests.schema_dump``.
"""

from __future__ import annotations

import difflib

import trio

from tests.schema_dump import SCHEMA_FILE, dump, normalise


async def test_schema_file_is_what_the_migrations_make(database_url):
    # database_url: a fresh database cloned from one every migration was applied to.
    made = await trio.to_thread.run_sync(dump, database_url)
    written = normalise(SCHEMA_FILE.read_text())
    if made != written:
        diff = "".join(difflib.unified_diff(written.splitlines(True), made.splitlines(True),
                                            "sql/schema.sql", "migrations", n=2))
        raise AssertionError("sql/schema.sql differs from the migrated schema; regenerate it "
                             f"with `python -m tests.schema_dump`:\n{diff[:6000]}")


def test_normalise_drops_only_what_varies_between_dumps():
    dump_text = ("--\n-- PostgreSQL database dump\n--\n\\restrict abc123\n"
                 "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '',"
                 " false);\n\n\n\nCREATE TABLE t (\n    a integer\n);\n\\unrestrict abc123\n")
    assert normalise(dump_text) == "CREATE TABLE t (\n    a integer\n);\n"
