"""The reaper: a watcher process that removes what a killed session left (testcontainers' Ryuk
is the model).

``kill -9`` of pytest (what a CI timeout does) runs no ``finally`` block: the throwaway server,
its data folder with the password file, the project folders, the scenario databases on a shared
server and a running ``flask`` command would all stay. So each harness process starts one
reaper, in a session of its own (a Ctrl-C to the terminal's process group does not reach it),
and tells it over a pipe what it makes and what it has removed itself. When the pipe reaches
end-of-file without a clean goodbye, the harness is gone, and the reaper removes what is still
registered, in order: process groups (SIGKILL), databases (``DROP DATABASE ... WITH (FORCE)``),
servers (SIGQUIT to the postmaster: immediate shutdown), then folders. It then exits.

The pipe carries the admin URL of a shared server so that the reaper can drop databases; the
URL is never in the reaper's argv or environment, so no other process can read it from /proc.

What it cannot cover: a kill of the whole process tree or cgroup (``kill -9 -PGID`` of the
reaper's own session, a container torn down); then the machine goes with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

# How long the reaper waits for a stopped postmaster before it kills it outright.
SERVER_GRACE = 5.0


class Reaper:
    """The harness's side: register and unregister what the session makes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._proc is None or self._pid != os.getpid() or self._proc.poll() is not None:
                # first use, or a forked child of the harness (which must not share the pipe)
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", __file__, str(os.getpid())],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    close_fds=True,
                    cwd="/",
                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                )
                self._pid = os.getpid()
            stdin: IO[bytes] | None = self._proc.stdin
            assert stdin is not None
            with contextlib.suppress(BrokenPipeError):
                stdin.write((json.dumps(message) + "\n").encode())
                stdin.flush()

    def add(self, kind: str, key: str, **extra: Any) -> None:
        """Remember `key` (a folder, a pgid, a database URL, a data folder) until `remove`."""
        self._send({"op": "add", "kind": kind, "key": key, **extra})

    def remove(self, kind: str, key: str) -> None:
        self._send({"op": "remove", "kind": kind, "key": key})

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None


REAPER = Reaper()


# -- the reaper process ----------------------------------------------------------------------


def _kill_group(pgid: str) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
        os.killpg(int(pgid), signal.SIGKILL)


def _drop_database(url: str, name: str) -> None:
    try:
        import psycopg2  # the harness's own dependency; imported only when needed
        from psycopg2 import sql
    except ImportError:
        return
    try:
        conn = psycopg2.connect(url, connect_timeout=10)
    except Exception:
        return
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
            if conn.server_version >= 130000:
                cur.execute(drop + sql.SQL(" WITH (FORCE)"))
            else:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                )
                cur.execute(drop)
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    except Exception:
        pass
    finally:
        conn.close()


def _stop_server(datadir: str) -> None:
    """SIGQUIT to the postmaster named in postmaster.pid: immediate shutdown, children included."""
    pidfile = Path(datadir) / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + SERVER_GRACE
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def reap(registered: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Remove what is still registered: processes, databases, servers, then folders."""
    items = list(registered.values())
    for kind, action in (
        ("pgid", lambda m: _kill_group(m["key"])),
        ("database", lambda m: _drop_database(m["admin_url"], m["key"])),
        ("server", lambda m: _stop_server(m["key"])),
        ("folder", lambda m: shutil.rmtree(m["key"], ignore_errors=True)),
    ):
        for message in items:
            if message["kind"] == kind:
                with contextlib.suppress(Exception):
                    action(message)


def main() -> None:
    # The harness's Ctrl-C or SIGTERM must not stop the reaper: it acts when the pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    registered: dict[tuple[str, str], dict[str, Any]] = {}
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        key = (message.get("kind"), message.get("key"))
        if message.get("op") == "add":
            registered[key] = message
        elif message.get("op") == "remove":
            registered.pop(key, None)
    reap(registered)


if __name__ == "__main__":
    main()
