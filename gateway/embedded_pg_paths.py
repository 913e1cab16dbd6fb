"""Where the embedded cluster lives and which PostgreSQL runs it.

* The binaries: those of the cluster's own ``PG_VERSION`` (a cluster made by PostgreSQL 15
  cannot be run by 16), the newest installed for a new cluster.
* The cluster's files: in ``data_dir``, unless we are root and the ``postgres`` user that
  runs the server for us (``initdb`` refuses root) cannot reach ``data_dir``: the usual
  container, where the clone sits under ``/root`` (mode 0700). Then the cluster's own files
  (``pg/``, ``pg.log``) live in a folder of that user's under :data:`ROOT_CLUSTERS`, named
  after ``data_dir``'s real path, and ``<data_dir>/pg`` is a symlink to them. Everything
  else (the password file, the locks, ``api_key``) stays in ``data_dir``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import pwd
import re
import stat
import subprocess
from collections.abc import Iterator

from gateway.startup_errors import StartupError

SYSTEM_BINARIES = pathlib.Path("/usr/lib/postgresql")
ROOT_CLUSTERS = pathlib.Path("/var/lib/gateway/embedded-pg")
REQUIRED = ("initdb", "pg_ctl", "postgres")


class EmbeddedPostgresError(StartupError):
    """The embedded cluster cannot be used: what went wrong (``cause``) and what to do (``fix``).

    ``detail`` is the failed tool's whole output, when a PostgreSQL tool failed."""

    detail: str = ""


def _bindir_version(bindir: pathlib.Path) -> str | None:
    """The major version these binaries make clusters of ("15", "9.6")."""
    if bindir.parent.parent == SYSTEM_BINARIES:
        return bindir.parent.name
    try:  # the pgserver wheel: ask its postgres ("postgres (PostgreSQL) 16.4")
        out = subprocess.run([str(bindir / "postgres"), "-V"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"(\d+)\.(\d+)", out)
    if found is None:
        return None
    return found[1] if int(found[1]) >= 10 else f"{found[1]}.{found[2]}"


def _candidates() -> Iterator[pathlib.Path]:
    def version(bindir: pathlib.Path) -> tuple[int, ...]:  # "9.6" < "15": compare numerically
        return tuple(int(x) if x.isdigit() else -1 for x in bindir.parent.name.split("."))

    yield from sorted(SYSTEM_BINARIES.glob("*/bin"), key=version, reverse=True)
    try:
        # Lazy: an optional extra, only imported when no system binaries fit (and often
        # absent, or installed without type hints).
        import pgserver  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return
    # Don't hard-code the wheel's layout; look for initdb anywhere below the package.
    package = pathlib.Path(pgserver.__file__).parent
    yield from (p.parent for p in sorted(package.glob("**/bin/initdb")))


def find_bindir(version: str | None = None, pgdir: pathlib.Path | None = None) -> pathlib.Path:
    """The binaries for a cluster of ``version`` (its PG_VERSION), else the newest found."""
    for bindir in _candidates():
        if not all(os.access(bindir / name, os.X_OK) for name in REQUIRED):
            continue
        if version is None or _bindir_version(bindir) == version:
            return bindir
    if version is not None:
        raise EmbeddedPostgresError(
            f"the embedded cluster in {pgdir} was created by PostgreSQL {version}, whose server "
            f"binaries are not installed (no {SYSTEM_BINARIES / version / 'bin'})",
            f"install them (Debian/Ubuntu: `apt-get install postgresql-{version}`), or move the "
            f"cluster to the installed version with pg_upgrade, or choose another data_dir")
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found (initdb, pg_ctl, postgres)",
        "install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`), or "
        "`pip install 'gateway[pgserver]'`, or set database.url to an existing server")


def cluster_version(pgdir: pathlib.Path) -> str | None:
    """The PG_VERSION of the cluster in pgdir, None if there is no cluster yet."""
    try:
        return (pgdir / "PG_VERSION").read_text().strip() or None
    except FileNotFoundError:
        return None


def server_user() -> pwd.struct_passwd | None:
    """Who runs initdb/postgres: None for ourselves; as root (which they refuse) postgres or
    nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EmbeddedPostgresError(
        "running as root, but no 'postgres' or 'nobody' user exists to run PostgreSQL (it "
        "refuses to run as root)", "run the gateway as a normal user, or set database.url")


def blocked_folder(path: pathlib.Path, pw: pwd.struct_passwd) -> pathlib.Path | None:
    """The first folder from / down to path that pw cannot enter (mode bits only, no ACLs)."""
    groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
    for folder in [*reversed(path.parents), path]:
        st = folder.stat()
        if st.st_uid == pw.pw_uid:
            bit = stat.S_IXUSR
        else:
            bit = stat.S_IXGRP if st.st_gid in groups else stat.S_IXOTH
        if not st.st_mode & bit:
            return folder
    return None


def linked_home(data_dir: pathlib.Path) -> pathlib.Path | None:
    """The folder holding the cluster when ``<data_dir>/pg`` is a symlink to it."""
    link = data_dir / "pg"
    if not link.is_symlink():
        return None
    return pathlib.Path(os.readlink(link)).parent


def place(data_dir: pathlib.Path, pw: pwd.struct_passwd) -> pathlib.Path:
    """As root: the folder for ``pg/`` and ``pg.log`` that ``pw`` can reach (data_dir
    exists). Creates the outside folder and the symlink to it when data_dir is out of reach."""
    if (home := linked_home(data_dir)) is not None:
        return home
    # data_dir is ours: grant search (not read) permission on it, as the server needs.
    if blocked_folder(data_dir, pw) == data_dir:
        os.chmod(data_dir, stat.S_IMODE(data_dir.stat().st_mode) | 0o011)
    if blocked_folder(data_dir, pw) is None:
        return data_dir
    if (data_dir / "pg").exists():  # an existing cluster behind a folder the user lost
        folder = blocked_folder(data_dir, pw)
        raise EmbeddedPostgresError(
            f"PostgreSQL runs as user {pw.pw_name!r} (it refuses to run as root), but that user "
            f"cannot enter {folder}, above the cluster in {data_dir / 'pg'}",
            f"`chmod o+x {folder}`, or move the data_dir elsewhere (e.g. under /var/lib or "
            f"/srv), or set database.url")
    real = data_dir.resolve()
    name = re.sub(r"[^A-Za-z0-9._-]", "_", real.name)[:40]
    home = ROOT_CLUSTERS / f"{name}-{hashlib.sha256(str(real).encode()).hexdigest()[:16]}"
    for folder in reversed([ROOT_CLUSTERS, *ROOT_CLUSTERS.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o755)
    with contextlib.suppress(FileExistsError):
        home.mkdir(mode=0o700)
        os.chown(home, pw.pw_uid, pw.pw_gid)
    if folder := blocked_folder(home, pw):
        raise EmbeddedPostgresError(
            f"PostgreSQL runs as user {pw.pw_name!r} (it refuses to run as root), but that user "
            f"can enter neither the data_dir {data_dir} nor {folder}",
            f"`chmod o+x {folder}`, or choose a data_dir it can reach, or set database.url")
    (home / "data_dir").write_text(f"{real}\n")  # which data_dir this cluster belongs to
    with contextlib.suppress(FileExistsError):  # a second gateway starting at once made it
        os.symlink(home / "pg", data_dir / "pg")
    return linked_home(data_dir) or home
