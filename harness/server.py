"""The PostgreSQL server the scenarios run against: a throwaway one, or one the user names.

The throwaway server is started by pytest-postgresql's executor from the machine's ``pg_ctl``.
``initdb`` and ``pg_ctl`` refuse to run as root, and CI runs as root, so when the harness is
root it runs them through a tiny wrapper that drops to an unprivileged account (``postgres``
when the machine has it, else a system user it creates). Everything the server writes lives
in one private folder owned by that account and removed on stop.

The server listens on 127.0.0.1 only; TCP logins need a password made fresh for each server
(never the article's), and the Unix socket sits in the private folder.
"""

from __future__ import annotations

import glob
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
from pytest_postgresql.executors import PostgreSQLExecutor

URL_ENV = "MIGRATE_HARNESS_PG_URL"
PG_CTL_ENV = "MIGRATE_HARNESS_PG_CTL"
SERVICE_ACCOUNT = "migrate-harness"
# A throwaway cluster needs no durability; these settings make CREATE DATABASE and DDL cheaper.
FAST_SETTINGS = "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"


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
        f"os.execv({pg_ctl!r}, [{pg_ctl!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(stat.S_IRWXU)
    return str(wrapper)


class _Executor(PostgreSQLExecutor):
    """pytest-postgresql's executor, with password logins on TCP and trust on the private socket.

    The stock executor writes its password file with the caller's identity, which the
    unprivileged server account cannot read; ours lives in the server's own folder.
    """

    def __init__(self, *args: object, pwfile: str, **kwargs: object) -> None:
        self._pwfile = pwfile
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _build_initdb_command(self, initdb_options: list[str], pgdata: str | None = None) -> list[str]:
        options = [o for o in initdb_options if not o.startswith("--auth")]
        options += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={self._pwfile}"]
        return super()._build_initdb_command(options, pgdata)


class ThrowawayServer:
    """Start a private PostgreSQL for one test session and remove every trace of it on stop."""

    def __init__(self, pg_ctl: str | None = None) -> None:
        self.pg_ctl = find_pg_ctl(pg_ctl)
        self.folder: Path | None = None
        self.executor: _Executor | None = None

    def start(self) -> Server:
        password = secrets.token_urlsafe(18)
        self.folder = Path(tempfile.mkdtemp(prefix="migrate-harness-pg-"))
        executable = self.pg_ctl
        if os.geteuid() == 0:
            account = _service_account()
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            executable = _write_wrapper(self.folder, self.pg_ctl, account)
        pwfile = self.folder / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(stat.S_IRUSR | stat.S_IWUSR)
        if os.geteuid() == 0:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        port = port_for.select_random()
        self.executor = _Executor(
            executable=executable,
            host="127.0.0.1",
            port=port,
            datadir=str(self.folder / "data"),
            unixsocketdir=str(self.folder),
            logfile=str(self.folder / "server.log"),
            startparams="-w",
            dbname="postgres",
            user="postgres",
            postgres_options=FAST_SETTINGS,
            pwfile=str(pwfile),
        )
        try:
            self.executor.start()
        except Exception as exc:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise ServerError(
                f"the throwaway PostgreSQL did not start ({exc}); pg_ctl: {self.pg_ctl}\n{tail}\n"
                f"Point the harness at a running server instead with --pg-url or {URL_ENV}."
            ) from None
        url = sa.URL.create("postgresql+psycopg2", "postgres", password, "127.0.0.1", port, "postgres")
        return Server(url=url, version=_wait_until_ready(url), origin=f"throwaway, pg_ctl at {self.pg_ctl}")

    def stop(self) -> None:
        if self.executor is not None:
            try:
                if self.executor.running():
                    self.executor.stop()
            finally:
                self.executor = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


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


def server_version(url: sa.URL) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
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
        raise ServerError(
            f"cannot connect to the server named by --pg-url/{URL_ENV} "
            f"({url.render_as_string(hide_password=True)}): {exc.orig}"
        ) from None
    return Server(url=url, version=version, origin=f"existing, {url.host}:{url.port or 5432}")
