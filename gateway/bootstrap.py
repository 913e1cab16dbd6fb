"""First start on an empty database: a default account and its API key, shown once."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway.config import Settings
from gateway.db import Database
from gateway.keys import display_prefix, shape_problem
from gateway.logs import get_logger
from gateway.startup_errors import StartupError
from gateway.store import accounts

log = get_logger(__name__)
DEFAULT_ACCOUNT_NAME = "default"


def check_bootstrap_key(key: str | None) -> None:
    """Refuse a ``GATEWAY_BOOTSTRAP_API_KEY`` that authentication would refuse on every
    request (one definition of a key's shape: :mod:`gateway.keys`)."""
    if key is not None and (problem := shape_problem(key)) is not None:
        raise StartupError(f"GATEWAY_BOOTSTRAP_API_KEY cannot be an API key: {problem}",
                           "use at least 32 URL-safe characters (letters, digits, '-', '_'), "
                           "e.g. from `python3 -c "
                           "'import secrets; print(secrets.token_urlsafe(32))'`"
                           ", or unset it to have a key generated")


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by its owner only (0600), replacing any file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # an existing file keeps its old mode otherwise
        file.write(secret + "\n")


async def bootstrap(db: Database, settings: Settings, bootstrap_key: str | None) -> None:
    """Create the default account on an empty database.

    With ``bootstrap_key`` (``GATEWAY_BOOTSTRAP_API_KEY``) that key is used, and on a
    database that has accounts already it is added to the oldest one if unknown, so scripts
    can rely on it. Without it, a new key is printed once and written to
    ``<data_dir>/api_key`` (mode 0600).
    """
    check_bootstrap_key(bootstrap_key)
    caps = settings.accounts
    created = await accounts.create_first_account(
        db, name=DEFAULT_ACCOUNT_NAME, concurrent_max=caps.default_concurrent_max,
        calls_per_minute=caps.default_calls_per_minute, api_key=bootstrap_key)
    if created is not None:
        log.info("account.bootstrapped", account_id=str(created.account.id),
                 api_key_prefix=display_prefix(created.api_key))
        if bootstrap_key is None:
            key_file = settings.database.data_dir / "api_key"
            write_secret(key_file, created.api_key)
            print(f"Created account '{DEFAULT_ACCOUNT_NAME}'. Its API key (shown once, also "
                  f"in {key_file}):\n{created.api_key}", file=sys.stdout, flush=True)
        return
    if bootstrap_key is not None:
        account = await accounts.oldest(db)
        if account is not None and await accounts.ensure_key(db, account.id, bootstrap_key,
                                                             "bootstrap"):
            log.info("account.key_added", account_id=str(account.id),
                     api_key_prefix=display_prefix(bootstrap_key))
