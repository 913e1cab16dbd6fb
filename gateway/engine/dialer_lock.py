"""One dialer per database: a PostgreSQL advisory lock held on a dedicated connection.

A process dials only while it holds the lock; one that does not get it serves the API
only (standby) and tries again every ``standby_retry_seconds``. The lock lives exactly as
long as its connection, outside the pool, so PostgreSQL releases it when the process dies
(kill -9 included).

Fencing: every claim checks in ``pg_locks`` that this process's lock backend still holds
the lock (:attr:`Fence.pid`, see dialing.sql ``claim``), so a process whose lock
connection is gone claims nothing, even before it notices. It notices within
``lock_check_seconds`` (:meth:`DialerLock.wait_lost`); the supervisor then cancels its
actors (their calls hang up and are recorded as interrupted) before a standby, which
retries only every ``standby_retry_seconds``, can normally take over.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from gateway.db import Database, DatabaseUnavailable, SessionConnection
from gateway.logs import get_logger

log = get_logger(__name__)


@attrs.define
class Fence:
    """The backend pid that holds the dialer lock for this process (None: not held)."""

    pid: int | None = None


class DialerLock:
    def __init__(self, db: Database, fence: Fence, *, retry_seconds: float,
                 check_seconds: float) -> None:
        self._db, self._fence = db, fence
        self._retry_seconds, self._check_seconds = retry_seconds, check_seconds
        self._session: SessionConnection | None = None

    @property
    def held(self) -> bool:
        return self._fence.pid is not None

    async def try_acquire(self) -> bool:
        """One try. DatabaseUnavailable when the database cannot be reached."""
        if self._session is None:
            self._session = await self._db.connect_session()
        try:
            got = await self._session.fetchval("dialer_lock.try_lock")
        except DatabaseUnavailable:
            await self._drop_session()
            raise
        if got:
            self._fence.pid = self._session.pid
        return bool(got)

    async def acquire(self, stop_trying: Callable[[], bool] = lambda: False) -> None:
        """Wait until the lock is held (logging ``engine.standby`` once while another
        process holds it). Never returns while ``stop_trying()`` (a shutdown) is true."""
        warned = False
        while True:
            if not stop_trying():
                try:
                    if await self.try_acquire():
                        if warned:
                            log.warning("engine.took_over", message="the other gateway process "
                                        "stopped: this one dials now")
                        return
                    if not warned:
                        warned = True
                        log.warning("engine.standby", message=(
                            "another gateway process is dialing on this database; this one "
                            "serves the API only and takes over when that one stops"))
                except DatabaseUnavailable:
                    log.warning("engine.lock_waiting_for_database",
                                retry_in_seconds=self._retry_seconds)
            await trio.sleep(self._retry_seconds)

    async def wait_lost(self) -> None:
        """Return when the lock is no longer held (its connection dropped or ended)."""
        while True:
            await trio.sleep(self._check_seconds)
            session = self._session
            if session is None:  # released meanwhile: not held
                break
            try:
                if not await session.fetchval("dialer_lock.holds"):
                    break
            except DatabaseUnavailable:
                break
        await self.release()

    async def release(self) -> None:
        """Give the lock up (closing its connection). Safe to call when not held."""
        self._fence.pid = None
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await self._drop_session()

    async def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
