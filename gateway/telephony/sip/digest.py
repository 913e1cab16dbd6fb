"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616).

Answers a 401 (WWW-Authenticate → Authorization) or a 407 (Proxy-Authenticate →
Proxy-Authorization) challenge. Algorithms MD5, MD5-sess, SHA-256 and SHA-256-sess; with
``qop=auth`` offered, the response carries ``cnonce`` and ``nc``. ``auth-int`` alone is not
supported (nor needed for INVITE/BYE through a trunk): such a challenge is "unanswerable",
and the caller treats the call as failed.

Pure functions, no I/O: nothing here is cancellable or raises beyond
:class:`DigestError` for a challenge it cannot answer.
"""

from __future__ import annotations

import hashlib
import secrets

import attrs

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class DigestError(ValueError):
    """A challenge this UA cannot answer (unknown scheme, algorithm or qop)."""


@attrs.frozen
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False


def parse_challenge(value: str) -> Challenge:
    """Read ``Digest realm="...", nonce="...", qop="auth,auth-int", ...``."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme[:20]!r}")
    params = parse_auth_params(rest)
    if "nonce" not in params or "realm" not in params:
        raise DigestError("challenge without realm or nonce")
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm.removesuffix("-SESS") not in _HASHES:
        raise DigestError(f"unsupported digest algorithm {algorithm[:20]!r}")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(params["realm"], params["nonce"], algorithm, qop, params.get("opaque"),
                     params.get("stale", "").lower() == "true")


def parse_auth_params(text: str) -> dict[str, str]:
    """``a="x, y", b=z`` → ``{"a": "x, y", "b": "z"}``: commas inside quotes are kept."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in "= \t,":
            i += 1
        name = text[start:i].lower()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            if name:
                params[name] = ""
            continue
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and text[i] != ",":
                i += 1
            value = text[start:i].strip()
        if name:
            params[name] = value
    return params


def _hash(algorithm: str, text: str) -> str:
    return _HASHES[algorithm.removesuffix("-SESS")](text.encode("utf-8")).hexdigest()


def digest_response(challenge: Challenge, *, username: str, password: str, method: str,
                    uri: str, cnonce: str = "", nc: int = 1) -> str:
    """The ``response`` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1)."""
    algo = challenge.algorithm
    ha1 = _hash(algo, f"{username}:{challenge.realm}:{password}")
    if algo.endswith("-SESS"):
        ha1 = _hash(algo, f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = _hash(algo, f"{method}:{uri}")
    if "auth" in challenge.qop:
        return _hash(algo, f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    if challenge.qop:
        raise DigestError(f"unsupported qop {','.join(challenge.qop)!r}")
    return _hash(algo, f"{ha1}:{challenge.nonce}:{ha2}")


def authorization(challenge: Challenge, *, username: str, password: str, method: str,
                  uri: str, cnonce: str | None = None, nc: int = 1) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` header value answering ``challenge``."""
    cnonce = cnonce or secrets.token_hex(8)
    response = digest_response(challenge, username=username, password=password,
                               method=method, uri=uri, cnonce=cnonce, nc=nc)
    parts = [f'username="{_quote(username)}"', f'realm="{_quote(challenge.realm)}"',
             f'nonce="{_quote(challenge.nonce)}"', f'uri="{_quote(uri)}"',
             f'response="{response}"', f"algorithm={challenge.algorithm}"]
    if challenge.opaque is not None:
        parts.append(f'opaque="{_quote(challenge.opaque)}"')
    if "auth" in challenge.qop:
        parts += ["qop=auth", f"nc={nc:08x}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    if any(ord(char) < 32 for char in value):
        raise DigestError("credentials and challenge values cannot hold control characters")
    return value.replace("\\", "\\\\").replace('"', '\\"')
