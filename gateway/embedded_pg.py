"""Private PostgreSQL cluster kept in the gateway's data directory.

Used when no ``database.url`` is configured. Layout inside ``data_dir``:

* ``pg/``            the cluster (owned by the user the server runs as, mode 0700); as root
                     with a data_dir the ``postgres`` user cannot reach, a symlink to the
                     cluster's folder under /var/lib/gateway/embedded-pg (see
                     :mod:`gateway.embedded_pg_paths`), which also holds ``pg.log``
* ``pg.log``         server log written by ``pg_ctl -l``
* ``pg-password``    password of the ``gateway`` superuser (0600, invoking user)
* ``pg-users.lock``  every process using the cluster holds a shared flock on it
* ``pg-start.lock``  exclusive flock serialising the start/stop decision

Several gateway processes may share one data dir: the first starts the cluster,
the others join it, and the last one to leave stops it. The cluster is run by the binaries
of its own PG_VERSION.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import pwd
import secrets
import socket
import subprocess
import typing
from collections.abc import AsyncIterator

import trio

from gateway.embedded_pg_paths import (
    EmbeddedPostgresError,
    blocked_folder,
    cluster_version,
    find_bindir,
    linked_home,
    place,
    server_user,
)

try:
    import structlog

    _log = structlog.get_logger(__name__)
except ImportError:  # structlog is a dependency, but keep this module importable without it
    import logging
    import types

    _log = types.SimpleNamespace(
        info=lambda event, **kw: logging.getLogger(__name__).info("%s %s", event, kw))

_SUPERUSER = "gateway"

# The names the tests (and older callers) import from here.
_find_bindir = find_bindir
_server_user = server_user
_blocked_folder = blocked_folder


def _open_locked(path: pathlib.Path, op: int) -> int:
    """Open (creating) path and flock it; blocking, so call it from a worker thread.

    flock locks belong to the open file description, so two opens conflict even within
    one process, exactly as two processes do."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, op)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write_private(path: pathlib.Path, text: str, uid: int, gid: int) -> None:
    """Write text to path, mode 0600 even if the file already existed, owned by uid/gid."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    with os.fdopen(os.open(path, flags, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        os.fchown(f.fileno(), uid, gid)
        f.write(text + "\n")


class _Cluster:
    """Blocking operations on the cluster; every method runs in a worker thread."""

    def __init__(self, data_dir: pathlib.Path, bindir: pathlib.Path | None,
                 user: pwd.struct_passwd | None) -> None:
        """``bindir`` None: the binaries of the cluster's PG_VERSION, chosen by prepare()."""
        self.data_dir, self.bindir, self.user = data_dir, bindir, user
        self.pwfile = data_dir / "pg-password"
        self._set_home(linked_home(data_dir) or data_dir)
        self.uid, self.gid = (os.geteuid(), -1) if user is None else (user.pw_uid, user.pw_gid)
        self.secret: str | None = None  # scrubbed from every error message, just in case

    def _set_home(self, home: pathlib.Path) -> None:
        self.home, self.pgdir, self.logfile = home, home / "pg", home / "pg.log"

    def prepare(self) -> None:
        """Create data_dir, pg/ and pg.log where the server user can reach them, and choose
        the binaries of the cluster's version."""
        pw = self.user
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700 if pw is None else 0o711)
        if pw is not None:
            self._set_home(place(self.data_dir, pw))
        if self.bindir is None:
            self.bindir = find_bindir(cluster_version(self.pgdir), self.pgdir)
        if pw is not None and (folder := blocked_folder(self.bindir, pw)):
            raise EmbeddedPostgresError(
                f"PostgreSQL runs as user {pw.pw_name!r} (it refuses to run as root), but that "
                f"user cannot enter {folder}, above the binaries in {self.bindir}",
                "install PostgreSQL system-wide (apt-get install postgresql), or set database.url")
        with contextlib.suppress(FileExistsError):
            self.pgdir.mkdir(mode=0o700)
            os.chown(self.pgdir, self.uid, self.gid)
        if (owner := self.pgdir.stat().st_uid) != self.uid:
            raise EmbeddedPostgresError(
                f"{self.pgdir} belongs to uid {owner}, but the server would run as uid {self.uid}",
                "run the gateway as the user that created it, `chown -R` it, "
                "or use another data_dir")
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.chown(self.logfile, self.uid, self.gid)

    def tool(self, name: str) -> pathlib.Path:
        """The path of one PostgreSQL program, among the binaries prepare() chose."""
        if self.bindir is None:
            raise AssertionError("prepare() chooses the binaries before any tool is used")
        return self.bindir / name

    def run(self, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool as the server user, with no PG* variables leaking in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        kw: dict[str, typing.Any] = {}
        if (pw := self.user) is not None:
            kw = dict(user=pw.pw_uid, group=pw.pw_gid,
                      extra_groups=os.getgrouplist(pw.pw_name, pw.pw_gid))
            home = pw.pw_dir if os.path.isdir(pw.pw_dir) else str(self.pgdir)
            env.update(HOME=home, USER=pw.pw_name, LOGNAME=pw.pw_name)
        cmd = [str(self.tool(str(args[0]))), *map(str, args[1:])]
        try:
            # close_fds (the default) matters: postgres must not inherit our flock descriptors.
            return subprocess.run(cmd, cwd=self.pgdir, env=env, capture_output=True, text=True,
                                  timeout=120, **kw)
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(f"{args[0]} did not finish within 120 s",
                                        f"see the server log {self.logfile}") from exc

    def fail(self, what: str, res: subprocess.CompletedProcess[str],
             log: bool) -> EmbeddedPostgresError:
        """One line: what failed, the tool's own reason (its error lines), where the log is."""
        detail = res.stderr + res.stdout
        if log:  # the server's own reason is in its log, which grows across starts
            with contextlib.suppress(OSError):
                detail += "\n" + self.logfile.read_bytes()[-16384:].decode(errors="replace")
        if self.secret:
            detail = detail.replace(self.secret, "***")
        lines = [line.strip() for line in detail.splitlines() if line.strip()]
        errors = [line for line in lines if any(
            word in line for word in ("error", "FATAL", "could not", "PANIC"))]
        reason = " / ".join((errors or lines)[-3:])[:600] or f"exit status {res.returncode}"
        error = EmbeddedPostgresError(
            f"{what} failed for the embedded cluster in {self.pgdir}: {reason}",
            f"see the full log {self.logfile}; a damaged cluster can be moved away to start afresh")
        error.detail = detail  # what start_or_join inspects for a port taken meanwhile
        return error

    def running(self) -> bool:
        return self.run("pg_ctl", "status", "-D", self.pgdir).returncode == 0

    def initdb(self) -> None:
        self.secret = secrets.token_urlsafe(32)
        # Saved first (ours) so a successful initdb never leaves an unknown password.
        _write_private(self.pwfile, self.secret, -1, -1)
        # initdb reads the password from a file, never argv; one the server user owns, inside
        # the cluster's home, which it can traverse ($TMPDIR may not be). pg-start.lock makes the
        # name safe.
        tmp = self.home / ".initdb-pwfile"
        _write_private(tmp, self.secret, self.uid, self.gid)
        try:
            _log.info("embedded_pg.initdb", data_dir=str(self.data_dir))
            res = self.run("initdb", "-D", self.pgdir, "-U", _SUPERUSER, "--auth=scram-sha-256",
                           f"--pwfile={tmp}", "--encoding=UTF8", "--locale=C")
        finally:
            tmp.unlink()
        if res.returncode != 0:
            raise self.fail("initdb", res, log=False)

    def start_or_join(self) -> tuple[int, bool]:
        """Return (port, joined). Caller holds pg-start.lock."""
        if not (self.pgdir / "PG_VERSION").exists():
            self.initdb()
        elif not self.pwfile.exists():
            raise EmbeddedPostgresError(
                f"{self.pwfile} is missing, so the cluster in {self.pgdir} cannot be reached",
                f"restore the file, or delete {self.pgdir} to start over (this destroys its data)")
        self.secret = self.pwfile.read_text().strip()
        if self.running():  # started by another gateway (or left over by a killed one)
            lines = (self.pgdir / "postmaster.pid").read_text().splitlines()
            return int(lines[3]), True  # 4th line of postmaster.pid is the port
        for attempts_left in (2, 1, 0):  # retry: another program may take the free port first
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            # No unix socket: avoids the 107-byte path limit and socket-dir permissions.
            opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
            res = self.run("pg_ctl", "start", "-w", "-t", "60", "-D", self.pgdir,
                           "-l", self.logfile, "-o", opts)
            if res.returncode == 0:
                return port, False
            error = self.fail("pg_ctl start", res, log=True)
            if not attempts_left or "could not bind" not in error.detail:
                raise error
        raise AssertionError("unreachable")

    def leave(self, users_fd: int) -> None:
        """Drop our share of the cluster; stop it if nobody else holds one."""
        with contextlib.ExitStack() as closing:  # both descriptors closed on every path
            closing.callback(os.close, users_fd)
            start_fd = _open_locked(self.data_dir / "pg-start.lock", fcntl.LOCK_EX)
            closing.callback(os.close, start_fd)
            try:  # turning our shared lock exclusive works only if no other process holds one
                fcntl.flock(users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _log.info("embedded_pg.left_running", data_dir=str(self.data_dir))
                return
            if self.running():
                res = self.run("pg_ctl", "stop", "-D", self.pgdir, "-m", "fast", "-w", "-t", "60")
                if res.returncode != 0:
                    raise self.fail("pg_ctl stop", res, log=True)
                _log.info("embedded_pg.stopped", data_dir=str(self.data_dir))


async def _wait_ready(cluster: _Cluster, port: int) -> None:
    """A joined cluster may still be recovering: wait until it accepts connections."""
    if not cluster.tool("pg_isready").exists():
        return
    for _ in range(60):
        res = await trio.to_thread.run_sync(cluster.run, "pg_isready", "-q", "-h", "127.0.0.1",
                                            "-p", str(port))
        if res.returncode == 0:
            return
        await trio.sleep(0.5)
    raise EmbeddedPostgresError(  # e.g. a stale postmaster.pid whose PID another process took
        f"the cluster in {cluster.pgdir} looks running but refuses connections on port {port}",
        f"if no PostgreSQL runs there, delete {cluster.pgdir / 'postmaster.pid'} and start again")


@contextlib.asynccontextmanager
async def embedded_postgres(data_dir: pathlib.Path) -> AsyncIterator[str]:
    """Start (or join) the private cluster in data_dir/'pg'; yield an asyncpg-compatible DSN
    (postgresql://USER:PASSWORD@127.0.0.1:PORT/postgres); on exit stop the cluster if no other
    gateway process still uses it."""
    # absolute() only joins os.getcwd(): no disk access to move to a thread.
    data_dir = pathlib.Path(data_dir).absolute()  # noqa: ASYNC240
    cluster = _Cluster(data_dir, None, server_user())
    try:
        await trio.to_thread.run_sync(cluster.prepare)
    except OSError as exc:  # data_dir is a file, on a read-only disk, not ours to write...
        raise EmbeddedPostgresError(
            f"cannot prepare the embedded cluster's folder {exc.filename or data_dir}: "
            f"{exc.strerror or exc}",
            "set database.data_dir to a folder this user can write, or set database.url") from exc
    users_fd: int | None = None
    try:
        start_fd = await trio.to_thread.run_sync(_open_locked, data_dir / "pg-start.lock",
                                                 fcntl.LOCK_EX)
        try:
            # Share taken before starting, so every later exit path goes through leave().
            users_fd = await trio.to_thread.run_sync(_open_locked, data_dir / "pg-users.lock",
                                                     fcntl.LOCK_SH)
            port, joined = await trio.to_thread.run_sync(cluster.start_or_join)
        finally:
            os.close(start_fd)
        if joined:
            await _wait_ready(cluster, port)
        _log.info("embedded_pg.reused" if joined else "embedded_pg.started", port=port,
                  data_dir=str(data_dir))
        yield f"postgresql://{_SUPERUSER}:{cluster.secret}@127.0.0.1:{port}/postgres"
    finally:
        # Shielded: a cancelled gateway must still release, and maybe stop, the cluster.
        if users_fd is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(cluster.leave, users_fd)
