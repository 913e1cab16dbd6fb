"""Start-up failures a user can cause, each as one plain line: what is wrong, how to fix it.

Errors propagate as they are (or as :class:`StartupError`, raised ``from`` the original where
the cause is known: the database connection, the SIP socket) and the CLI edge prints
:func:`describe` of every leaf of whatever trio's nurseries grouped them into. Nothing here
prints a traceback unless the log level is ``debug``.
"""

from __future__ import annotations

import errno
import socket
import traceback
from collections.abc import Iterator
from urllib.parse import unquote

from gateway import db
from gateway.config import ConfigError, Settings, SipSettings
from gateway.db import DatabaseUnavailable
from gateway.logs import redact_url
from gateway.migrations import MigrationError

# gateway.db translates asyncpg's ValueError for a bad URL (a port that is not a number)
# into its InvalidValue (new in this release: looked up, so this module does not break if
# it is renamed).
_INVALID_VALUE = tuple(filter(None, [getattr(db, "InvalidValue", None)]))
DEBUG_HINT = "rerun with GATEWAY_LOG_LEVEL=debug to see the traceback"


class StartupError(Exception):
    """The gateway cannot start: ``cause`` says what is wrong, ``fix`` what to do."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(cause, fix)
        self.cause, self.fix = cause, fix

    def __str__(self) -> str:
        return f"{self.cause}. Fix: {self.fix}."


def leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from leaves(inner)
    else:
        yield exc


# --- the database ---------------------------------------------------------------------------

# SQLSTATEs that waiting cannot fix: PostgreSQL answered and said no.
_REFUSALS = {
    "28P01": ("the database refused the password in {url}",
              "correct the password in database.url (GATEWAY_DATABASE_URL)"),
    "28000": ("the database refused the connection {url}: {reason}",
              "use a role that exists and may connect from this host (database.url, and the "
              "server's pg_hba.conf)"),
    "3D000": ("the database named in {url} does not exist",
              "create it (createdb NAME) or name an existing one in database.url"),
    "42501": ("the role in {url} may not connect: {reason}",
              "grant it CONNECT on the database, or use another role in database.url"),
}


def database_refused(exc: BaseException, url: str) -> StartupError | None:
    """The StartupError for a connection PostgreSQL refused, or that could not be tried."""
    reason = str(exc).replace(url, redact_url(url))
    template = _REFUSALS.get(getattr(exc, "sqlstate", None) or "")
    if template is not None:
        cause, fix = template
        return StartupError(cause.format(url=redact_url(url), reason=reason), fix)
    # asyncpg could not parse the URL (its ValueError, translated by gateway.db or not).
    if isinstance(exc, (ValueError, *_INVALID_VALUE)) or "DSN" in reason:
        return StartupError(f"database.url {redact_url(url)} is not a usable PostgreSQL URL "
                            f"({type(exc).__name__}: {reason})",
                            "write it as postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
                            "(percent-encode special characters in the password)")
    return None


def database_unreachable(url: str, seconds: float, last: BaseException | None) -> StartupError:
    why = str(last.__cause__ or last) if last is not None else "no answer"
    return StartupError(
        f"cannot reach the database at {redact_url(url)} after {seconds:g} s ({why})",
        "start PostgreSQL there or correct database.url (GATEWAY_DATABASE_URL); "
        "database.connect_timeout_seconds sets how long start-up waits")


# --- sockets ----------------------------------------------------------------------------------

def bind_error(exc: OSError, what: str, host: str, port: int, host_key: str,
               port_key: str) -> StartupError:
    """``what`` ("the HTTP server") could not bind ``host:port``."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return StartupError(f"{what} cannot listen on {where}: the name {host!r} does not "
                            f"resolve", f"set {host_key} to an address of this machine")
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"{what} cannot listen on {where}: the port is in use by another "
                            "program", f"stop that program, or set {port_key} to a free port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"{what} cannot listen on {where}: {host} is not an address of "
                            "this machine", f"set {host_key} to one of its addresses "
                            "(127.0.0.1, or 0.0.0.0 for all)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StartupError(f"{what} cannot listen on {where}: no permission (ports below 1024 "
                            "need root or CAP_NET_BIND_SERVICE)",
                            f"set {port_key} to 1024 or above, or grant the capability "
                            "(setcap cap_net_bind_service=+ep on the Python binary)")
    return StartupError(f"{what} cannot listen on {where}: {exc.strerror or exc}",
                        f"check {host_key} and {port_key}")


def sip_error(exc: BaseException, sip: SipSettings) -> StartupError:
    """The SIP adapter's start-up failure (``sip``: the [telephony.sip] settings)."""
    if isinstance(exc, OSError):
        return bind_error(exc, "the SIP adapter", sip.bind_host, sip.bind_port,
                          "telephony.sip.bind_host", "telephony.sip.bind_port")
    return StartupError(f"the SIP proxy {sip.proxy!r} cannot be used: {exc}",
                        "set telephony.sip.proxy to host:port of the trunk's outbound proxy "
                        "(a name DNS resolves, or an IP address)")


def _raised_in(exc: BaseException, package: str) -> bool:
    return any(f"/{package}/" in frame.f_code.co_filename
               for frame, _ in traceback.walk_tb(exc.__traceback__))


# --- the edge ---------------------------------------------------------------------------------

def describe(exc: BaseException, settings: Settings | None) -> str:
    """One line for one leaf error."""
    if isinstance(exc, (StartupError, ConfigError, MigrationError)):  # embedded cluster's too
        text = str(exc)
    elif isinstance(exc, OSError) and settings is not None and _raised_in(exc, "hypercorn"):
        http = settings.http
        text = str(bind_error(exc, "the HTTP server", http.host, http.port, "http.host",
                              "http.port"))
    elif isinstance(exc, DatabaseUnavailable):
        text = str(StartupError(f"lost the database during start-up ({exc})",
                                "check that PostgreSQL is up and start the gateway again"))
    else:
        text = f"unexpected error: {type(exc).__name__}: {exc} ({DEBUG_HINT})"
    return " ".join(text.split())  # one line, whatever the message held


def scrub(line: str, settings: Settings | None) -> str:
    """Mask the configured database password wherever a message quoted it."""
    url = settings.database.url if settings is not None else ""
    if url and redact_url(url) != url:
        line = line.replace(url, redact_url(url))
        for secret in _passwords(url):
            line = line.replace(secret, "***")
    return line


def _passwords(url: str) -> list[str]:
    found = []
    _, _, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    for part in rest.partition("?")[2].split("&"):
        name, eq, value = part.partition("=")
        if eq and name.lower().endswith("password"):
            found.append(value)
    return [s for secret in found for s in {secret, unquote(secret)} if len(s) >= 3]


def lines_for(exc: BaseException, settings: Settings | None) -> list[str]:
    """The lines to print for a failure: one per distinct leaf."""
    lines: list[str] = []
    for leaf in leaves(exc):
        line = scrub(describe(leaf, settings), settings)
        if line not in lines:
            lines.append(line)
    return lines
