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
import contextlib
import functools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import attrs
import trio_asyncio  # type: ignore[import-untyped]  # trio-asyncio ships no type hints

from gateway.copy_feed import Feed
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


class InvalidValue(DatabaseError):
    """A value the database cannot hold (SQLSTATE class 22: an integer past its column's
    type, a time past the calendar once converted to UTC...), refused by PostgreSQL or by
    asyncpg while encoding an argument. The schemas at the edges bound every input, so this
    is the last line of defence: the HTTP edge answers 400, never 500.

    ``argument`` is the 1-based query parameter when asyncpg said which, ``column`` the
    column when PostgreSQL named it, ``value`` the offending value as shown in the message,
    ``reason`` the short why."""

    def __init__(self, reason: str, *, argument: int | None = None,
                 column: str | None = None, value: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.argument = argument
        self.column = column
        self.value = value


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


# asyncpg's wording when an argument cannot be encoded (its client-side DataError).
_BAD_ARGUMENT = re.compile(r"invalid input for query argument \$(\d+): (.*) \(([^()]*)\)$", re.S)
# PostgreSQL's wording for most range errors: value "2147483648" is out of range for type ...
_QUOTED_VALUE = re.compile(r'"([^"]*)"')


def _invalid_value(exc: BaseException) -> InvalidValue | None:
    """The :class:`InvalidValue` that ``exc`` is, if it is a data error of either side."""
    if not isinstance(exc, (asyncpg.DataError, asyncpg.exceptions._base.DataError)):
        if isinstance(exc, (OverflowError, ValueError)) and _raised_in_asyncpg(exc):
            # An encoder's own error that asyncpg did not wrap ("date value out of range").
            return InvalidValue(str(exc)[:200] or type(exc).__name__)
        return None
    found = _BAD_ARGUMENT.match(str(exc))
    if found is not None:  # client side: asyncpg could not encode an argument
        return InvalidValue(found.group(3), argument=int(found.group(1)),
                            value=found.group(2))
    if isinstance(exc, asyncpg.DataError):  # server side: SQLSTATE class 22
        message = getattr(exc, "message", None) or str(exc)
        quoted = _QUOTED_VALUE.search(message)
        return InvalidValue(message[:200], column=getattr(exc, "column_name", None),
                            value=quoted.group(1) if quoted else None)
    return InvalidValue(str(exc)[:200])


def _raised_in_asyncpg(exc: BaseException) -> bool:
    # Only asyncpg's own OverflowError/ValueError are data errors: the same classes raised
    # by a transaction's own code are bugs and must stay what they are.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "asyncpg" in tb.tb_frame.f_code.co_filename


def _translate(exc: BaseException) -> BaseException:
    # First: a client-side DataError is also an InterfaceError whose text (holding the
    # value) could say "closed".
    invalid = _invalid_value(exc)
    if invalid is not None:
        return invalid
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

    async def fetchone(self, name: str, *args: Any) -> asyncpg.Record:
        """The row of a query that always returns one (``INSERT ... RETURNING``)."""
        return _one_row(name, await self.fetchrow(name, *args))

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self._conn.fetchval(query(name), *args)

    async def execute(self, name: str, *args: Any) -> str:
        return await self._conn.execute(query(name), *args)

    async def execute_script(self, sql: str) -> None:
        """Run raw SQL text (several statements, no parameters): for migrations only."""
        await self._conn.execute(sql)

    async def copy_chunks(self, table: str, columns: tuple[str, ...],
                          produce: Callable[[], bytes | None]) -> int:
        """COPY chunks of binary COPY data (``FORMAT binary``) into ``table``; return the
        rows copied.

        ``produce`` is blocking (a parser): it runs in a thread of its own, called until it
        returns None, a few chunks ahead of the COPY (:mod:`gateway.copy_feed`), so the
        parse and the server's COPY overlap. An exception from ``produce`` aborts the COPY
        (and so the transaction) and propagates as it is. When this returns or raises,
        ``produce`` is no longer running.
        """
        async with Feed(produce) as feed:
            status = await self._conn.copy_to_table(table, source=feed.chunks(),
                                                    columns=list(columns), format="binary")
        return int(status.split()[-1])


def _one_row(name: str, row: asyncpg.Record | None) -> asyncpg.Record:
    if row is None:  # a bug, or the row a query reads through was deleted meanwhile
        raise LookupError(f"query {name} returned no row")
    return row


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")


class DatabaseBusy(DatabaseUnavailable):
    """Every connection of the pool stayed in use for ``ACQUIRE_TIMEOUT_SECONDS``: the
    database answers, this process has more work than connections (not an outage).
    A subclass of DatabaseUnavailable, so whoever waits out an outage waits this out."""


def _pool_is_busy(pool: asyncpg.Pool) -> bool:
    return pool.get_size() >= pool.get_max_size() and pool.get_idle_size() == 0


@contextlib.asynccontextmanager
async def _acquired(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; an acquire that timed out because all of them are in use is
    :class:`DatabaseBusy`, one that timed out connecting stays an outage."""
    try:
        conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
    except TimeoutError:
        if _pool_is_busy(pool):
            raise DatabaseBusy(f"all {pool.get_max_size()} database connections stayed in "
                               f"use for {ACQUIRE_TIMEOUT_SECONDS:g} s") from None
        raise
    try:
        yield conn
    finally:
        await pool.release(conn)


class SessionConnection:
    """One connection outside any pool, for session state held as long as it lives (a
    LISTEN). Errors translated, used from trio."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def listen(self, channel: str, on_message: Callable[[str], None],
                     on_closed: Callable[[], None]) -> None:
        """LISTEN on ``channel``: ``on_message(payload)`` is called for every notification,
        ``on_closed()`` once the connection has ended (both in the trio thread, from
        asyncio's callbacks: they must not block)."""
        conn = self._conn

        def message(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            on_message(payload)

        @_translated
        async def run() -> None:
            conn.add_termination_listener(lambda _conn: on_closed())
            await conn.add_listener(channel, message)

        await trio_asyncio.aio_as_trio(run)()

    async def close(self) -> None:
        conn = self._conn

        async def close_conn() -> None:
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

        await trio_asyncio.aio_as_trio(close_conn)()


@attrs.frozen
class PoolFigures:
    """A pool's connections at one instant (for /metrics): open, lent out, at most."""

    size: int
    in_use: int
    max_size: int


class Database:
    """A pool of connections, used from trio. Construct with :meth:`open`."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn

    def pool_figures(self) -> PoolFigures:
        """Read from the pool's own counters: no round trip, nothing awaited."""
        pool = self._pool
        size = pool.get_size()
        return PoolFigures(size, size - pool.get_idle_size(), pool.get_max_size())

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10,
                   name: str = "gateway") -> Database:
        """``name``: the connections' ``application_name``, which tells an operator in
        ``pg_stat_activity`` whose they are (the API's, the engine's, the webhook worker's)."""

        @_translated
        async def create() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                timeout=CONNECT_TIMEOUT_SECONDS, command_timeout=COMMAND_TIMEOUT_SECONDS,
                # Idle connections are dropped so a restarted server is reconnected cleanly.
                max_inactive_connection_lifetime=60.0,
                server_settings={"application_name": name})

        return cls(await trio_asyncio.aio_as_trio(create)(), dsn)

    async def open_sibling(self, *, min_size: int = 1, max_size: int, name: str) -> Database:
        """Another pool on the same database (the engine's, so API requests cannot take
        every connection the dial loop and the recorder need). Close it on its own."""
        return await Database.open(self._dsn, min_size=min_size, max_size=max_size, name=name)

    async def connect_session(self) -> SessionConnection:
        """A dedicated connection outside the pool (see :class:`SessionConnection`)."""
        dsn = self._dsn

        @_translated
        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS)

        return SessionConnection(await trio_asyncio.aio_as_trio(connect)())

    async def close(self) -> None:
        pool = self._pool

        async def close_pool() -> None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except (TimeoutError, OSError, asyncpg.PostgresError):
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
            async with _acquired(pool) as conn:
                async with conn.transaction(isolation=isolation):
                    return await fn(Tx(conn))

        @_translated
        async def run() -> T:
            return await _rerun_conflicts(once, attempts)

        return await trio_asyncio.aio_as_trio(run)()

    async def _one(self, method: str, name: str, args: tuple[Any, ...]) -> Any:
        pool = self._pool
        sql = query(name)

        async def once() -> Any:
            async with _acquired(pool) as conn:
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

    async def fetchone(self, name: str, *args: Any) -> asyncpg.Record:
        """The row of a query that always returns one (``INSERT ... RETURNING``)."""
        return _one_row(name, await self.fetchrow(name, *args))

    async def fetchval(self, name: str, *args: Any) -> Any:
        return await self._one("fetchval", name, args)

    async def execute(self, name: str, *args: Any) -> str:
        return await self._one("execute", name, args)
