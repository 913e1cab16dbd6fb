"""Bearer-key authentication for every ``/api/v1`` endpoint."""

from __future__ import annotations

from quart import g, request

from gateway.http.context import services
from gateway.http.errors import ApiError
from gateway.keys import KEY_PREFIX
from gateway.store import accounts

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gateway"'}


async def authenticate() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthorized",
                       "missing API key: send 'Authorization: Bearer <api key>'",
                       headers=_CHALLENGE)
    key = key.strip()
    found = None
    if key.startswith(KEY_PREFIX) and len(key) < 200:
        found = await accounts.authenticate(services().db, key)
    if found is None:
        raise ApiError(401, "unauthorized", "invalid API key", headers=_CHALLENGE)
    g.principal = found
