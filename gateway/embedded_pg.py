"""Private PostgreSQL cluster kept in the gateway's data directory.

Used when no ``database.url`` is configured. Layout inside ``data_dir``:

* ``pg/``            the cluster (owned by the user the server runs as, mode 0700)
* ``pg.log``         server log written by ``pg_ctl -l``
* ``pg-password``    password of the ``gateway`` superuser (0600, invoking user)
* ``pg-users.lock``  every process using the cluster holds a shared flock on it
* ``pg-start.lock``  exclusive flock serialising the start/stop decision

Several gateway processes may share one data dir: the first starts the cluster,
the others join it, and the last one to leave stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import pwd
import secrets
import socket
import stat
import subprocess
from typing import AsyncIterator, Iterator

import trio

try:
    import structlog

    _log = structlog.get_logger(__name__)
except ImportError:  # structlog is a dependency, but keep this module importable without it
    import logging
    import types

    _log = types.SimpleNamespace(info=lambda event, **kw: logging.getLogger(__name__).info("%s %s", event, kw))

_SUPERUSER = "gateway"
_REQUIRED = ("initdb", "pg_ctl", "postgres")


class EmbeddedPostgresError(Exception):
    """A clear, user-facing message of what went wrong and what to do."""


def _find_bindir() -> pathlib.Path:
    """System binaries (highest version) first, then the optional pgserver wheel."""

    def version(bindir: pathlib.Path) -> tuple[int, ...]:  # "9.6" < "15": compare numerically
        return tuple(int(x) if x.isdigit() else -1 for x in bindir.parent.name.split("."))

    def candidates() -> Iterator[pathlib.Path]:
        yield from sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        try:
            import pgserver  # lazy: optional extra, only imported when no system binaries fit
        except ImportError:
            return
        # Don't hard-code the wheel's layout; look for initdb anywhere below the package.
        yield from (p.parent for p in sorted(pathlib.Path(pgserver.__file__).parent.glob("**/bin/initdb")))

    for bindir in candidates():
        if all(os.access(bindir / name, os.X_OK) for name in _REQUIRED):
            return bindir
    raise EmbeddedPostgresError(
        "No PostgreSQL server binaries found (initdb, pg_ctl, postgres). Install PostgreSQL "
        "(Debian/Ubuntu: `apt-get install postgresql`), or `pip install 'gateway[pgserver]'`, "
        "or set database.url to an existing server."
    )


def _server_user() -> pwd.struct_passwd | None:
    """Who runs initdb/postgres: None for ourselves; as root (which they refuse) postgres or nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EmbeddedPostgresError(
        "Running as root, but no 'postgres' or 'nobody' user exists to run PostgreSQL "
        "(it refuses to run as root). Run the gateway as a normal user or set database.url."
    )


def _blocked_folder(path: pathlib.Path, pw: pwd.struct_passwd) -> pathlib.Path | None:
    """The first folder from / down to path that pw cannot enter (mode bits only, no ACLs)."""
    groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
    for folder in [*reversed(path.parents), path]:
        st = folder.stat()
        bit = stat.S_IXUSR if st.st_uid == pw.pw_uid else stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH
        if not st.st_mode & bit:
            return folder
    return None


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
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        os.fchown(f.fileno(), uid, gid)
        f.write(text + "\n")


class _Cluster:
    """Blocking operations on the cluster; every method runs in a worker thread."""

    def __init__(self, data_dir: pathlib.Path, bindir: pathlib.Path, user: pwd.struct_passwd | None):
        self.data_dir, self.bindir, self.user = data_dir, bindir, user
        self.pgdir, self.logfile, self.pwfile = data_dir / "pg", data_dir / "pg.log", data_dir / "pg-password"
        self.uid, self.gid = (os.geteuid(), -1) if user is None else (user.pw_uid, user.pw_gid)
        self.secret: str | None = None  # scrubbed from every error message, just in case

    def prepare(self) -> None:
        """Create data_dir, pg/ and pg.log with permissions the server user can live with."""
        pw = self.user
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700 if pw is None else 0o711)
        if pw is not None:
            # The server user reaches pg/ and pg.log by path. data_dir is ours, so grant search
            # (not read) permission on it; parent folders are the operator's to fix.
            if _blocked_folder(self.data_dir, pw) == self.data_dir:
                os.chmod(self.data_dir, stat.S_IMODE(self.data_dir.stat().st_mode) | 0o011)
            for path, hint in (
                (self.data_dir, "choose a data_dir elsewhere (e.g. under /var/lib or /srv), chmod o+x {folder}"),
                (self.bindir, "install PostgreSQL system-wide (apt-get install postgresql)"),
            ):
                if folder := _blocked_folder(path, pw):
                    raise EmbeddedPostgresError(
                        f"PostgreSQL runs as user {pw.pw_name!r} (it refuses to run as root), but that user "
                        f"cannot enter {folder}: {hint.format(folder=folder)}, or set database.url."
                    )
        with contextlib.suppress(FileExistsError):
            self.pgdir.mkdir(mode=0o700)
            os.chown(self.pgdir, self.uid, self.gid)
        if (owner := self.pgdir.stat().st_uid) != self.uid:
            raise EmbeddedPostgresError(
                f"{self.pgdir} belongs to uid {owner}, but the server would run as uid {self.uid}. Run the "
                f"gateway as the user that created it, `chown -R` it, or use another data_dir."
            )
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.logfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.chown(self.logfile, self.uid, self.gid)

    def run(self, *args: str | os.PathLike) -> subprocess.CompletedProcess:
        """Run a PostgreSQL tool as the server user, with no PG* variables leaking in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        kw: dict = {}
        if (pw := self.user) is not None:
            kw = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=os.getgrouplist(pw.pw_name, pw.pw_gid))
            home = pw.pw_dir if os.path.isdir(pw.pw_dir) else str(self.pgdir)
            env.update(HOME=home, USER=pw.pw_name, LOGNAME=pw.pw_name)
        cmd = [str(self.bindir / str(args[0])), *map(str, args[1:])]
        try:
            # close_fds (the default) matters: postgres must not inherit our flock descriptors.
            return subprocess.run(cmd, cwd=self.pgdir, env=env, capture_output=True, text=True, timeout=120, **kw)
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresError(f"{args[0]} did not finish within 120 s; see {self.logfile}") from exc

    def fail(self, what: str, res: subprocess.CompletedProcess, log: bool) -> EmbeddedPostgresError:
        detail = res.stderr + res.stdout
        if log:  # the server's own reason is in its log, which grows across starts
            with contextlib.suppress(OSError):
                detail += "\n" + self.logfile.read_bytes()[-16384:].decode(errors="replace")
        tail = "\n".join(detail.strip().splitlines()[-20:])
        if self.secret:
            tail = tail.replace(self.secret, "***")
        return EmbeddedPostgresError(f"{what} failed for the embedded cluster in {self.pgdir}:\n{tail}")

    def running(self) -> bool:
        return self.run("pg_ctl", "status", "-D", self.pgdir).returncode == 0

    def initdb(self) -> None:
        self.secret = secrets.token_urlsafe(32)
        # Saved first (ours) so a successful initdb never leaves an unknown password.
        _write_private(self.pwfile, self.secret, -1, -1)
        # initdb reads the password from a file, never argv; one the server user owns, inside
        # data_dir, which it can traverse ($TMPDIR may not be). pg-start.lock makes the name safe.
        tmp = self.data_dir / ".initdb-pwfile"
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
                f"{self.pwfile} is missing, so the cluster in {self.pgdir} cannot be reached. Restore "
                f"the file, or delete {self.pgdir} to start over (this destroys its data)."
            )
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
            res = self.run("pg_ctl", "start", "-w", "-t", "60", "-D", self.pgdir, "-l", self.logfile, "-o", opts)
            if res.returncode == 0:
                return port, False
            error = self.fail("pg_ctl start", res, log=True)
            if not attempts_left or "could not bind" not in str(error):
                raise error
        raise AssertionError("unreachable")

    def leave(self, users_fd: int) -> None:
        """Drop our share of the cluster; stop it if nobody else holds one."""
        with contextlib.ExitStack() as closing:  # both descriptors closed on every path
            closing.callback(os.close, users_fd)
            closing.callback(os.close, _open_locked(self.data_dir / "pg-start.lock", fcntl.LOCK_EX))
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
    if not (cluster.bindir / "pg_isready").exists():
        return
    for _ in range(60):
        res = await trio.to_thread.run_sync(cluster.run, "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port))
        if res.returncode == 0:
            return
        await trio.sleep(0.5)
    raise EmbeddedPostgresError(  # e.g. a stale postmaster.pid whose PID another process took
        f"The cluster in {cluster.pgdir} looks running but refuses connections on port {port}. If no "
        f"PostgreSQL runs there, delete {cluster.pgdir / 'postmaster.pid'} and start again.")


@contextlib.asynccontextmanager
async def embedded_postgres(data_dir: pathlib.Path) -> AsyncIterator[str]:
    """Start (or join) the private cluster in data_dir/'pg'; yield an asyncpg-compatible DSN
    (postgresql://USER:PASSWORD@127.0.0.1:PORT/postgres); on exit stop the cluster if no other
    gateway process still uses it."""
    data_dir = pathlib.Path(data_dir).absolute()
    cluster = _Cluster(data_dir, await trio.to_thread.run_sync(_find_bindir), _server_user())
    await trio.to_thread.run_sync(cluster.prepare)
    users_fd: int | None = None
    try:
        start_fd = await trio.to_thread.run_sync(_open_locked, data_dir / "pg-start.lock", fcntl.LOCK_EX)
        try:
            # Share taken before starting, so every later exit path goes through leave().
            users_fd = await trio.to_thread.run_sync(_open_locked, data_dir / "pg-users.lock", fcntl.LOCK_SH)
            port, joined = await trio.to_thread.run_sync(cluster.start_or_join)
        finally:
            os.close(start_fd)
        if joined:
            await _wait_ready(cluster, port)
        _log.info("embedded_pg.reused" if joined else "embedded_pg.started", port=port, data_dir=str(data_dir))
        yield f"postgresql://{_SUPERUSER}:{cluster.secret}@127.0.0.1:{port}/postgres"
    finally:
        if users_fd is not None:  # shielded: a cancelled gateway must still release and maybe stop
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(cluster.leave, users_fd)
