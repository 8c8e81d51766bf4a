"""One fresh database per scenario, created and dropped with sqlalchemy-utils.

Names carry the process id and a random suffix so that xdist workers and concurrent tox
environments sharing one server never collide.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import sqlalchemy_utils

from harness.reaper import REAPER
from harness.server import Server, bounded, engine_for

PREFIX = "mh_"


def database_name(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:24]
    return f"{PREFIX}{slug}_{os.getpid()}_{secrets.token_hex(3)}"


@contextmanager
def scratch_database(server: Server, label: str) -> Iterator[sa.URL]:
    """Create an empty database, yield its URL, and drop it whatever happens inside."""
    url = server.database_url(database_name(label))
    admin = server.url.set(drivername="postgresql").render_as_string(hide_password=False)
    REAPER.add("database", str(url.database), admin_url=admin)  # dropped by it if we are killed
    try:
        sqlalchemy_utils.create_database(bounded(url))
        yield url
    finally:
        try:
            if sqlalchemy_utils.database_exists(bounded(url)):
                sqlalchemy_utils.drop_database(bounded(url))
            REAPER.remove("database", str(url.database))
        except sa.exc.OperationalError:
            # A server that has gone away took the database with it (or will serve it no more):
            # its error must not hide the scenario's own. A server still up that refuses the drop
            # is a real leftover, and says so.
            if _reachable(server):
                raise


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
