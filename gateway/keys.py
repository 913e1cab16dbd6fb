"""API keys: generated once, shown once, stored only as a hash.

One definition of a key's shape, used by authentication and by the bootstrap key check
alike: at least :data:`KEY_MIN_LENGTH` URL-safe characters (``A-Z a-z 0-9 - _``). A key the
gateway generates is ``gw_`` and 43 of them; an operator's own key (``GATEWAY_BOOTSTRAP_API_KEY``)
needs no prefix.
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "gw_"
KEY_MIN_LENGTH = 32  # 32 URL-safe characters: 192 bits if random
KEY_MAX_LENGTH = 256  # a bound on what a request makes us hash
_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{KEY_MIN_LENGTH},{KEY_MAX_LENGTH}}}")
_DISPLAY_LENGTH = len(KEY_PREFIX) + 8


def generate_key() -> str:
    """A new key: ``gw_`` and 256 random bits, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def is_well_formed(key: str) -> bool:
    """Could this be a key? (Authentication looks up only keys of this shape.)"""
    return _SHAPE.fullmatch(key) is not None


def shape_problem(key: str) -> str | None:
    """Why ``key`` cannot be a key, in words for an operator; None if it can."""
    if is_well_formed(key):
        return None
    if len(key) < KEY_MIN_LENGTH:
        return f"it has {len(key)} characters, a key needs at least {KEY_MIN_LENGTH}"
    if len(key) > KEY_MAX_LENGTH:
        return f"it has {len(key)} characters, a key has at most {KEY_MAX_LENGTH}"
    return ("it contains characters other than letters, digits, '-' and '_' (a space, "
            "quote or newline is often a copy-paste slip)")


def hash_key(key: str) -> bytes:
    # Generated keys carry 256 bits of entropy, so a plain sha256 resists guessing as well as
    # a slow KDF would, and keeps authentication to one hash and one index probe per request.
    return hashlib.sha256(key.encode("utf-8")).digest()


def display_prefix(key: str) -> str:
    """The part of a key that may be shown and logged."""
    return key[:_DISPLAY_LENGTH]
