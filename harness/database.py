"""One fresh database per scenario, owned by a role of its own; both dropped afterwards.

Names carry the process id and a random suffix so that xdist workers and concurrent tox
environments sharing one server never collide.

The harness's own reads of a scenario's database (the schema after each step, the applied
revisions) share one connection, kept idle between reads and closed before the database is
dropped: a login per read cost a new server process, a SCRAM exchange and cold catalog caches,
some 12 times per scenario.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from harness.reaper import REAPER
from harness.server import CONNECT_TIMEOUT, Server, engine_for

PREFIX = "mh_"
_ENGINES: dict[str, sa.Engine] = {}  # a scenario database's URL -> its engine, until it is dropped


@contextmanager
def connection(url: sa.URL) -> Iterator[sa.Connection]:
    """A connection to `url` for the harness's own reads, from one kept for that database. It
    is idle (no transaction, so no lock) whenever a command runs; a dead one is replaced."""
    key = url.render_as_string(hide_password=False)
    engine = _ENGINES.get(key)
    if engine is None:
        engine = _ENGINES[key] = sa.create_engine(
            url,
            pool_size=1,
            max_overflow=2,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT},
        )
    with engine.connect() as conn:
        yield conn


def close_connections(url: sa.URL) -> None:
    """Close what `connection` kept for `url` (before its database is dropped)."""
    engine = _ENGINES.pop(url.render_as_string(hide_password=False), None)
    if engine is not None:
        engine.dispose()


def database_name(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:24]
    return f"{PREFIX}{slug}_{os.getpid()}_{secrets.token_hex(3)}"


@contextmanager
def scratch_database(server: Server, label: str) -> Iterator[sa.URL]:
    """Create an empty database owned by a role of its own, yield the role's URL, and drop both
    whatever happens inside.

    The role is an ordinary login role: not a superuser, no CREATEDB or CREATEROLE, and not a
    member of pg_execute_server_program or pg_read_server_files, so ``COPY ... PROGRAM`` and
    server-side file reads are refused. Its URL is the only one the project (``.flaskenv``)
    and the scenario's ``sql:`` steps ever see; the server's admin URL stays in the harness.
    """
    name = database_name(label)
    password = secrets.token_urlsafe(18)
    url = server.database_url(name).set(username=name, password=password)
    admin = server.url.set(drivername="postgresql").render_as_string(hide_password=False)
    REAPER.add("database", name, admin_url=admin)  # dropped by the reaper if we are killed
    try:
        _admin(
            server,
            f"CREATE ROLE {_quote(name)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}'",
            f"CREATE DATABASE {_quote(name)} OWNER {_quote(name)}",
        )
        yield url
    finally:
        close_connections(url)
        try:
            _admin(
                server,
                f"DROP DATABASE IF EXISTS {_quote(name)}{_force(server)}",
                f"DROP ROLE IF EXISTS {_quote(name)}",
            )
            REAPER.remove("database", name)
        except sa.exc.OperationalError:
            # A server that has gone away took the database with it (or will serve it no more):
            # its error must not hide the scenario's own. A server still up that refuses the drop
            # is a real leftover, and says so.
            if _reachable(server):
                raise


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _force(server: Server) -> str:
    """WITH (FORCE) ends a session a killed command left (PostgreSQL 13 and later)."""
    try:
        major = int(server.version.split(".")[0].split()[0])
    except ValueError:
        return ""
    return " WITH (FORCE)" if major >= 13 else ""


def _admin(server: Server, *statements: str) -> None:
    """Run statements as the server's admin role, outside a transaction (CREATE/DROP DATABASE)."""
    engine = engine_for(server.url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _reachable(server: Server) -> bool:
    engine = engine_for(server.url)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def leftover_databases(server: Server) -> list[str]:
    """Databases this harness made that still exist (for the no-leftovers checks)."""
    engine = engine_for(server.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": PREFIX + "%"}
            )
            return sorted(r[0] for r in rows)
    finally:
        engine.dispose()
