"""Bearer-key authentication for every ``/api/v1`` endpoint.

A verified key is remembered for ``http.auth_cache_seconds`` (per process), so a request
costs no database round trip for it: under full-speed dialing each round trip waits its
turn on the event loop. A key revoked in the database keeps working here for at most
that long; the account's caps are always read fresh where they matter (``/call-limits``,
start and resume).
"""

from __future__ import annotations

import trio
from quart import current_app, g, request

from gateway.http.context import services
from gateway.http.errors import ApiError
from gateway.keys import hash_key, is_well_formed
from gateway.store import accounts
from gateway.store.accounts import Principal

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gateway"'}
_CACHE_MAX_KEYS = 10_000


class KeyCache:
    """Verified keys by hash, each with the trio time it expires at."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._known: dict[bytes, tuple[Principal, float]] = {}

    def get(self, digest: bytes) -> Principal | None:
        entry = self._known.get(digest)
        if entry is None:
            return None
        if entry[1] <= trio.current_time():
            del self._known[digest]
            return None
        return entry[0]

    def put(self, digest: bytes, principal: Principal) -> None:
        if self.seconds <= 0:
            return
        if len(self._known) >= _CACHE_MAX_KEYS:
            self._known.clear()
        self._known[digest] = (principal, trio.current_time() + self.seconds)


def key_cache() -> KeyCache:
    return current_app.extensions["gateway_keys"]  # made by create_app


async def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized",
                       "missing API key: send 'Authorization: Bearer <api key>'",
                       headers=_CHALLENGE)
    key = key.strip()
    found = None
    if is_well_formed(key):  # the shape bootstrap accepts too: gateway/keys.py
        cache, digest = key_cache(), hash_key(key)
        found = cache.get(digest)
        if found is None:
            found = await accounts.authenticate(services().db, key)
            if found is not None:
                cache.put(digest, found)
    if found is None:
        raise ApiError(401, "unauthorized", "invalid API key", headers=_CHALLENGE)
    g.principal = found
