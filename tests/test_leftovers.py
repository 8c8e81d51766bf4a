"""Nothing left behind: after whole sessions, after interrupted ones, and with sessions side by side.

Each test starts real pytest sessions of the harness (subprocesses, each with a ``TMPDIR`` of its
own) and afterwards looks for what they could leave: ``migrate-harness-*`` folders (projects and
throwaway servers), processes working in or started from that folder (``flask``, ``postgres``),
and ``mh_*`` databases of their scenarios on a shared server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import OWNERS, STACK_CACHE, one_table, processes_in

from harness.database import leftover_databases
from harness.server import URL_ENV, Server

pytestmark = pytest.mark.needs_server

# Read before pytester moves HOME to its own folder (which would make every inner run build its stack).

# The readiness marker: a file the models write in the project folder (the flask command's working
# folder) just before sleeping far longer than the command timeout. Once it exists, the flask command
# is mid-run; a harness that waited for the command instead of stopping it would take 120 s.
MARKER = "models-sleeping"
SLOW_MODELS = f"      import time\n      open({MARKER!r}, 'w').close()\n      time.sleep(600)\n"
# Well under the command timeout (120 s): past it, the harness must have waited for the command.
STOP_WITHIN = 60


def scenario(scenario_id: str, extra: str = "", more: str = "") -> str:
    return one_table(scenario_id, extra + OWNERS) + more


def harness_folders(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name.startswith("migrate-harness-"))


class Session:
    """One inner pytest session of the harness in a folder of its own, with its own TMPDIR."""

    def __init__(self, folder: Path, url: str | None) -> None:
        self.folder, self.url = folder, url
        # As root the throwaway server runs as `postgres`, which must reach its folder in TMPDIR:
        # pytest's own tmp_path (under a 0700 folder) is out of its reach.
        self.tmpdir = Path(tempfile.mkdtemp(prefix="mh-test-session-", dir="/tmp"))
        self.tmpdir.chmod(0o755)
        folder.mkdir(parents=True)
        (folder / "scenarios").mkdir()

    def write(self, scenario_id: str, text: str) -> None:
        (self.folder / "scenarios" / f"{scenario_id}.yaml").write_text(text)

    def start(self, *args: str, sigint_ignored: bool = False) -> subprocess.Popen[str]:
        """Start the session; `sigint_ignored` starts it the way a non-interactive shell starts a
        background job (``cmd &``), with SIGINT ignored, as the CI launcher did."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.pop(URL_ENV, None)
        env.update(TMPDIR=str(self.tmpdir), MIGRATE_HARNESS_CACHE=STACK_CACHE)
        url = ["--pg-url", self.url] if self.url else []
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", *url, "-p", "no:cacheprovider", *args],
            cwd=self.folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
        )

    def marker_written(self) -> bool:
        return any(self.tmpdir.glob(f"migrate-harness-*/project/{MARKER}"))

    def assert_nothing_left(self) -> None:
        try:
            assert harness_folders(self.tmpdir) == []
            assert processes_in(self.tmpdir) == []
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def databases_of(server: Server, *scenario_ids: str) -> list[str]:
    return [d for d in leftover_databases(server) if d.startswith(tuple(f"mh_{i}_" for i in scenario_ids))]


@pytest.mark.parametrize(
    ("signum", "own_server", "runner"),
    [
        (signal.SIGINT, True, "subprocess"),
        (signal.SIGINT, True, "fork"),
        (signal.SIGTERM, True, "subprocess"),
        (signal.SIGTERM, False, "fork"),
    ],
    ids=[
        "SIGINT-throwaway-server",
        "SIGINT-throwaway-server-fork",
        "SIGTERM-throwaway-server",
        "SIGTERM-shared-server-fork",
    ],
)
def test_an_interrupted_run_stops_at_once_and_leaves_no_database_folder_or_process(
    tmp_path, harness_server, signum, own_server, runner
):
    """The signal arrives while a flask command sleeps in the models: the run stops well before
    the command's timeout and cleans up. SIGINT is sent to a session that inherited it ignored."""
    url = None if own_server else harness_server.url.render_as_string(hide_password=False)
    session = Session(tmp_path / "session", url)
    session.write("interrupted", scenario("interrupted", extra=SLOW_MODELS))
    session.write("never_reached", scenario("never_reached"))
    proc = session.start("--runner", runner, sigint_ignored=signum == signal.SIGINT)
    try:
        wait_for(lambda: session.marker_written() or proc.poll() is not None, 300, "the models' marker")
        assert proc.poll() is None, proc.communicate()[0]
        if own_server:
            assert any("postgres" in p for p in processes_in(session.tmpdir)), (
                "the throwaway server runs there"
            )
        else:
            assert databases_of(harness_server, "interrupted")
        sent = time.monotonic()
        proc.send_signal(signum)
        try:
            out, _ = proc.communicate(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
            raise AssertionError(f"still running {STOP_WITHIN}s after signal {signum}:\n{out}") from None
        print(f"signal {signum} ({runner}): pytest exited {time.monotonic() - sent:.1f}s later")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out
    if signum == signal.SIGTERM:
        assert "signal 15" in out
    session.assert_nothing_left()
    assert databases_of(harness_server, "interrupted", "never_reached") == []


@pytest.mark.parametrize(
    ("own_server", "runner"),
    [(True, "fork"), (False, "subprocess")],
    ids=["throwaway-server-fork", "shared-server-subprocess"],
)
def test_a_killed_run_leaves_nothing_within_30_seconds(tmp_path, harness_server, own_server, runner):
    """``kill -9`` of pytest mid-command (a CI timeout): no ``finally`` runs, so the reaper
    (harness/reaper.py) must remove the command, the database, the server and the folders."""
    url = None if own_server else harness_server.url.render_as_string(hide_password=False)
    session = Session(tmp_path / "session", url)
    session.write("killed", scenario("killed", extra=SLOW_MODELS))
    proc = session.start("--runner", runner)
    try:
        wait_for(lambda: session.marker_written() or proc.poll() is not None, 300, "the models' marker")
        assert proc.poll() is None, proc.communicate()[0]
        assert processes_in(session.tmpdir), "the flask command (and the server) run there"
        if not own_server:
            assert databases_of(harness_server, "killed")
        killed = time.monotonic()
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def nothing_left() -> bool:
        return (
            harness_folders(session.tmpdir) == []
            and processes_in(session.tmpdir) == []
            and databases_of(harness_server, "killed") == []
        )

    try:
        wait_for(nothing_left, 30, "the reaper to remove what the killed run left")
    finally:
        print(f"kill -9 ({runner}): cleaned {time.monotonic() - killed:.1f}s later")
        left = (harness_folders(session.tmpdir), processes_in(session.tmpdir))
        session.assert_nothing_left()
    assert left == ([], [])


def test_whole_sessions_side_by_side_never_collide_and_leave_nothing(tmp_path, harness_server):
    """Two sessions at once, like two tox environments: each with its own throwaway server (two
    ports), and two more with two xdist workers each on one shared server (four processes making
    databases for the same scenario ids at the same time)."""
    url = harness_server.url.render_as_string(hide_password=False)
    # the SQL keeps each scenario's database alive long enough for the runs to overlap
    wait = "      - sql: SELECT pg_sleep(2)\n"
    sessions = [
        Session(tmp_path / "own-a", None),
        Session(tmp_path / "own-b", None),
        Session(tmp_path / "shared-a", url),
        Session(tmp_path / "shared-b", url),
    ]
    for s in sessions:
        for scenario_id in ("side_one", "side_two"):
            s.write(scenario_id, scenario(scenario_id, more=wait))
    # the fork runner: collisions and leftovers do not depend on how commands run (the
    # interruption tests above try both runners), and six sessions' commands share two cores
    procs = [s.start("--snapshot-update", "--runner", "fork") for s in sessions[:2]]
    procs += [s.start("--snapshot-update", "--runner", "fork", "-n", "2") for s in sessions[2:]]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out
        assert "2 passed" in out
    for s in sessions:
        s.assert_nothing_left()
    assert databases_of(harness_server, "side_one", "side_two") == []
