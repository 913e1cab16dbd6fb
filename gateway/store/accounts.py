"""Accounts (tenants), their caps and their API keys."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import attrs

from gateway.db import Database, Tx
from gateway.keys import display_prefix, generate_key, hash_key
from gateway.store.records import from_row


@attrs.frozen
class Account:
    id: uuid.UUID
    name: str
    concurrent_max: int
    calls_per_minute: int
    daily_calls_max: int | None
    daily_minutes_max: int | None
    created_at: datetime


@attrs.frozen
class AccountSettings:
    """What an account sets for its campaigns (read fresh: not part of the cached
    principal)."""

    # Canonical window JSON, validated at the edge; None: no default window.
    calling_window: dict[str, Any] | None


@attrs.frozen
class Principal:
    """Who a request acts as: the account and the key it authenticated with."""

    account: Account
    api_key_id: uuid.UUID


@attrs.frozen
class NewAccount:
    account: Account
    api_key: str  # shown once, never stored


class _Unset(enum.Enum):
    """A cap not named in a call: it stays as it is (None means unlimited)."""

    UNSET = enum.auto()


_UNSET = _Unset.UNSET


async def _insert_key(tx: Tx, account_id: uuid.UUID, key: str, label: str) -> uuid.UUID:
    return await tx.fetchval("accounts.insert_key", account_id, hash_key(key),
                             display_prefix(key), label)


async def create_account(db: Database, *, name: str, concurrent_max: int,
                         calls_per_minute: int, api_key: str | None = None) -> NewAccount:
    """Create an account and its first API key (``api_key`` given, or a new one)."""
    key = api_key or generate_key()

    async def create(tx: Tx) -> Account:
        row = await tx.fetchone("accounts.insert", name, concurrent_max, calls_per_minute)
        await _insert_key(tx, row["id"], key, "initial")
        return from_row(Account, row)

    return NewAccount(await db.transaction(create), key)


async def create_first_account(db: Database, *, name: str, concurrent_max: int,
                               calls_per_minute: int,
                               api_key: str | None = None) -> NewAccount | None:
    """Create the bootstrap account if the database has no account yet; else None."""
    key = api_key or generate_key()

    async def create(tx: Tx) -> Account | None:
        await tx.execute("accounts.bootstrap_lock")
        if await tx.fetchval("accounts.count"):
            return None
        row = await tx.fetchone("accounts.insert", name, concurrent_max, calls_per_minute)
        await _insert_key(tx, row["id"], key, "bootstrap")
        return from_row(Account, row)

    account = await db.transaction(create)
    return None if account is None else NewAccount(account, key)


async def ensure_key(db: Database, account_id: uuid.UUID, key: str, label: str) -> bool:
    """Register ``key`` for the account unless it is known already; True if added."""

    async def ensure(tx: Tx) -> bool:
        if await tx.fetchval("accounts.key_exists", hash_key(key)):
            return False
        await _insert_key(tx, account_id, key, label)
        return True

    return await db.transaction(ensure)


async def authenticate(db: Database, key: str) -> Principal | None:
    row = await db.fetchrow("accounts.by_key", hash_key(key))
    if row is None:
        return None
    return Principal(from_row(Account, row), row["api_key_id"])


async def count(db: Database) -> int:
    return await db.fetchval("accounts.count")


async def oldest(db: Database) -> Account | None:
    row = await db.fetchrow("accounts.oldest")
    return None if row is None else from_row(Account, row)


async def get(db: Database, account_id: uuid.UUID) -> Account | None:
    row = await db.fetchrow("accounts.get", account_id)
    return None if row is None else from_row(Account, row)


async def list_all(db: Database) -> list[Account]:
    return [from_row(Account, row) for row in await db.fetch("accounts.list")]


async def set_limits(db: Database, account_id: uuid.UUID, *,
                     concurrent_max: int | _Unset = _UNSET,
                     calls_per_minute: int | _Unset = _UNSET,
                     daily_calls_max: int | _Unset | None = _UNSET,
                     daily_minutes_max: int | _Unset | None = _UNSET) -> Account | None:
    """Change some caps; a daily cap of None means unlimited. Unnamed caps stay as they are."""
    values = [concurrent_max, calls_per_minute, daily_calls_max, daily_minutes_max]
    given = [value is not _UNSET for value in values]
    args = [None if value is _UNSET else value for value in values]
    row = await db.fetchrow("accounts.set_limits", account_id, *args, *given)
    return None if row is None else from_row(Account, row)


async def get_settings(db: Database, account_id: uuid.UUID) -> AccountSettings | None:
    row = await db.fetchrow("accounts.get_settings", account_id)
    return None if row is None else from_row(AccountSettings, row)


async def set_calling_window(db: Database, account_id: uuid.UUID,
                             window: dict[str, Any] | None) -> AccountSettings | None:
    """Set (or, with None, clear) the window of the account's campaigns that have none of
    their own; None if there is no such account."""
    row = await db.fetchrow("accounts.set_calling_window", account_id, window)
    return None if row is None else AccountSettings(calling_window=row["calling_window"])
