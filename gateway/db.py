"""The database module: the only code that touches asyncpg.

asyncpg is asyncio-only; the gateway runs on trio. Every call crosses through
``trio_asyncio.aio_as_trio`` exactly once: a compound operation (acquire + transaction +
queries) is written as one asyncio coroutine against :class:`Tx` and run by
:meth:`Database.transaction`. Queries are addressed by name (see :mod:`gateway.sql`).

Errors are translated here, at the boundary: callers see :class:`DatabaseUnavailable` when
PostgreSQL cannot be reached (the HTTP edge answers 503, the engine waits and retries) and
:class:`IntegrityError` subclasses for constraint violations, never asyncpg's classes.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import trio_asyncio

from gateway.sql import query

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 5.0
ACQUIRE_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0


class DatabaseError(Exception):
    """Base of the errors this module raises."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL cannot be reached (down, restarting, refusing connections, pool exhausted)."""


class IntegrityError(DatabaseError):
    """A constraint rejected the write; ``constraint`` names it when PostgreSQL said."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class UniqueViolation(IntegrityError):
    pass


class ForeignKeyViolation(IntegrityError):
    pass


class CheckViolation(IntegrityError):
    pass


_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,         # SQLSTATE class 08
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,  # 57P0x: admin/crash shutdown
)
# Transient conflicts PostgreSQL resolves by aborting one side: the transaction is re-run.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
TRANSACTION_ATTEMPTS = 3

_INTEGRITY = {
    asyncpg.UniqueViolationError: UniqueViolation,
    asyncpg.ForeignKeyViolationError: ForeignKeyViolation,
    asyncpg.CheckViolationError: CheckViolation,
}


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"database unavailable: {type(exc).__name__}")
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return DatabaseUnavailable("database connection closed")
    if isinstance(exc, asyncpg.InternalClientError):
        # What asyncpg raises on a pooled connection the server ended under it (57P01 at
        # server shutdown): "cannot switch to state ...; another operation is in progress".
        return DatabaseUnavailable(f"database connection broken: {exc}")
    for source, target in _INTEGRITY.items():
        if isinstance(exc, source):
            return target(str(exc), getattr(exc, "constraint_name", None))
    return exc


def _translated(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Wrap an asyncio coroutine function so asyncpg errors leave it translated."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            translated = _translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    return wrapper


async def _rerun_conflicts(once: Callable[[], Awaitable[T]], attempts: int) -> T:
    """``once()``, run again (up to ``attempts`` times in all) when PostgreSQL aborted it
    for a deadlock or a serialization failure."""
    for attempt in range(1, attempts + 1):
        try:
            return await once()
        except _RETRYABLE:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.01 * attempt)
    raise AssertionError("unreachable")


class Tx:
    """A connection inside a transaction, used from asyncio code run by ``transaction``."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return await self._conn.fetch(query(name), *args)

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        return await self._conn.fetchrow(query(name), *args)

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self._conn.fetchval(query(name), *args)

    async def execute(self, name: str, *args: Any) -> str:
        return await self._conn.execute(query(name), *args)

    async def execute_script(self, sql: str) -> None:
        """Run raw SQL text (several statements, no parameters): for migrations only."""
        await self._conn.execute(sql)

    async def copy_chunks(self, table: str, columns: tuple[str, ...],
                          produce: Callable[[], bytes | None]) -> int:
        """COPY CSV chunks into ``table``; return the rows copied.

        ``produce`` is blocking (a parser): it runs in a worker thread, one call per chunk
        until it returns None, and the next chunk is produced while the previous one is
        sent, so the parse and the server's COPY overlap. An exception from ``produce``
        aborts the COPY (and so the transaction) and propagates as it is.
        """
        loop = asyncio.get_running_loop()

        async def chunks():
            pending = loop.run_in_executor(None, produce)
            try:
                while (chunk := await pending) is not None:
                    pending = loop.run_in_executor(None, produce)
                    yield chunk
            finally:
                if not pending.done():  # the COPY failed: let the parser's call finish
                    await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved: it is the COPY's failure that counts

        status = await self._conn.copy_to_table(table, source=chunks(), columns=list(columns),
                                                format="csv")
        return int(status.split()[-1])


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")


class Database:
    """A pool of connections, used from trio. Construct with :meth:`open`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> Database:
        @_translated
        async def create() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                timeout=CONNECT_TIMEOUT_SECONDS, command_timeout=COMMAND_TIMEOUT_SECONDS,
                # Idle connections are dropped so a restarted server is reconnected cleanly.
                max_inactive_connection_lifetime=60.0)

        return cls(await trio_asyncio.aio_as_trio(create)())

    async def close(self) -> None:
        pool = self._pool

        async def close_pool() -> None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (asyncio.TimeoutError, OSError, asyncpg.PostgresError):
                pool.terminate()

        await trio_asyncio.aio_as_trio(close_pool)()

    async def transaction(self, fn: Callable[[Tx], Awaitable[T]], *,
                          isolation: str = "read_committed", rerun: bool = True) -> T:
        """Run the asyncio coroutine function ``fn(tx)`` in one transaction; return its value.

        A deadlock or serialization failure re-runs the whole transaction (up to
        ``TRANSACTION_ATTEMPTS`` times), so ``fn`` must read what it decides on; with
        ``rerun=False`` (``fn`` consumes something it cannot read twice) it is raised."""
        pool = self._pool
        attempts = TRANSACTION_ATTEMPTS if rerun else 1

        async def once() -> T:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                async with conn.transaction(isolation=isolation):
                    return await fn(Tx(conn))

        @_translated
        async def run() -> T:
            return await _rerun_conflicts(once, attempts)

        return await trio_asyncio.aio_as_trio(run)()

    async def _one(self, method: str, name: str, args: tuple) -> Any:
        pool = self._pool
        sql = query(name)

        async def once() -> Any:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as conn:
                return await getattr(conn, method)(sql, *args)

        @_translated
        async def run() -> Any:
            # A statement on its own is its own transaction, rolled back whole.
            return await _rerun_conflicts(once, TRANSACTION_ATTEMPTS)

        return await trio_asyncio.aio_as_trio(run)()

    async def fetch(self, name: str, *args: Any) -> list[asyncpg.Record]:
        return await self._one("fetch", name, args)

    async def fetchrow(self, name: str, *args: Any) -> asyncpg.Record | None:
        return await self._one("fetchrow", name, args)

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self._one("fetchval", name, args)

    async def execute(self, name: str, *args: Any) -> str:
        return await self._one("execute", name, args)
