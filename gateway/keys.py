"""API keys: generated once, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "gw_"
_DISPLAY_LENGTH = len(KEY_PREFIX) + 8


def generate_key() -> str:
    """A new key: ``gw_`` and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    # Keys carry 256 bits of entropy, so a plain sha256 resists guessing as well as a slow
    # KDF would, and keeps authentication to one hash and one index probe per request.
    return hashlib.sha256(key.encode("utf-8")).digest()


def display_prefix(key: str) -> str:
    """The part of a key that may be shown and logged."""
    return key[:_DISPLAY_LENGTH]
