"""The fork runner is faithful to the subprocess runner, and cleans up after itself.

The main test runs scenarios with both runners and asserts identical observations, one test per
scenario (so ``-n 2`` spreads them), each running the scenario once per runner. Which scenarios
is a parameter, the environment variable ``MIGRATE_HARNESS_FAITHFULNESS``:

- ``sample`` (the default, what ``tox`` runs): `SAMPLE`, a fixed set chosen so that every kind of
  step and every kind of failure passes through both runners (the reasons are in `SAMPLE`);
- ``all`` (``tox -e matrix``, ``tox -e faithfulness`` and the weekly CI job): every scenario under
  ``scenarios/``, about one subprocess run of the library plus one fork run (docs/performance.md).

The smaller tests pin the process-level details that make a forked child a stand-in for a new
``flask`` process: argv, environment, working folder, sys.path, streams, exit codes, tracebacks,
timeouts, and no process left behind.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import session_for, timeout_after

from harness import account, store
from harness.observe.normalise import observe
from harness.project import create_project
from harness.runners import base as commands
from harness.runners.fork import ForkRunner, ForkServer
from harness.runners.process import SubprocessRunner
from harness.scenario import is_scenario_file, load_scenario
from harness.server import Server
from harness.session import Session
from harness.stacks import StackEnv

pytestmark = pytest.mark.needs_server

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = sorted(
    p.relative_to(ROOT) for p in (ROOT / "scenarios").rglob("*.y*ml") if is_scenario_file(p.relative_to(ROOT))
)
# The sample `tox` runs with both runners. Each entry is there for something no other entry
# covers; together they exercise every command kind (init, migrate, upgrade, downgrade, sql,
# query), every scenario option that changes what a command sees (migrate_options in env.py,
# known_failures' extra commands), and every way a step fails. (A traceback from broken model
# code, a usage error and a missing .flaskenv are compared byte for byte by
# test_flask_cli_output_is_byte_identical below.)
SAMPLE = {
    # The article's own three commands on one model: what the whole project is about.
    "scenarios/article/article.yaml": "the article's init, migrate and upgrade",
    # sql and query steps around a `flask db upgrade` that PostgreSQL rejects (expect: failure):
    # a command's non-zero exit, its traceback on stderr, and the state rolled back.
    "scenarios/columns/add_not_null_with_rows.yaml": "an upgrade that fails, sql and query",
    # downgrade to base, then one upgrade applying two pending revisions.
    "scenarios/workflow/two_pending.yaml": "downgrade, and two revisions in one upgrade",
    # A migrate that detects nothing (compare_server_default off): the empty revision's output.
    "scenarios/defaults/server_default_added_compare_off.yaml": "a migrate that finds no change",
    # migrate_options rewrite env.py (include_schemas), which each child must read afresh; a
    # schema made by an sql step.
    "scenarios/schemas/include_schemas.yaml": "env.py options, a second schema",
    # A known failure: the round trip's `flask db downgrade base` fails with SQLAlchemy's
    # CompileError (a failure in the harness's own checks, not in a listed command).
    "scenarios/constraints/unique_unnamed.yaml": "a known failure in the round trip",
    # An sql step PostgreSQL rejects (expect: failure) and an enum type's own DDL, with the
    # autogenerate_clean known failure.
    "scenarios/enums/enum_value_added.yaml": "an sql step that fails, an enum type",
    # expect: any: the stack decides whether the upgrade fails (an ALTER without USING).
    "scenarios/types/integer_to_boolean.yaml": "an upgrade whose outcome depends on the stack",
    # The other `flask db` commands, with the options that change what they print: offline SQL
    # (upgrade, downgrade and stamp --sql), show, current -v, history -v ...
    "scenarios/workflow/offline_sql.yaml": "offline --sql, show, stamp, current and history -v",
    # ... branches, heads, merge, revision --branch-label and migrate --rev-id ...
    "scenarios/workflow/branch_labels.yaml": "branches, heads, merge, labelled revisions",
    # ... check, which exits non-zero while the models and the migrations differ ...
    "scenarios/workflow/check_before_after.yaml": "check, failing then passing",
    # ... and the "please adjust!" edit of a generated revision, then an empty revision.
    "scenarios/enums/fix_enum_value_added.yaml": "an edit of the revision file, revision",
}
FAITHFULNESS_ENV = "MIGRATE_HARNESS_FAITHFULNESS"
SELECTIONS = {"sample": sorted(Path(p) for p in SAMPLE), "all": LIBRARY}
try:
    SCENARIO_FILES = SELECTIONS[os.environ.get(FAITHFULNESS_ENV) or "sample"]
except KeyError:
    raise ValueError(
        f"{FAITHFULNESS_ENV}={os.environ[FAITHFULNESS_ENV]!r}: use one of {', '.join(SELECTIONS)}"
    ) from None
# A URL nothing listens on: commands that never reach the database need no real one.
NO_DATABASE = "postgresql://nobody:nothing@127.0.0.1:9/none"


@pytest.fixture(scope="module")
def forkserver(harness_stack: StackEnv) -> Iterator[ForkServer]:
    with ForkServer.start(harness_stack) as server:
        yield server


@pytest.fixture(scope="module")
def sessions(harness_server: Server) -> Iterator[tuple[Session, Session]]:
    """Two sessions on the run's server: one per runner."""
    with (
        session_for(harness_server, "subprocess") as by_process,
        session_for(harness_server, "fork") as by_fork,
    ):
        yield by_process, by_fork


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A folder to run commands in: as root, commands run as the scenario account, in folders
    made for it (pytest's tmp_path is out of its reach)."""
    folder = account.private_folder("mh-test-fastrunner-")
    yield folder
    account.release(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True if `pid` runs (a zombie waiting for a parent that is not us counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.stem for p in SCENARIO_FILES])
def test_both_runners_observe_the_same(
    path: Path, harness_stack: StackEnv, sessions: tuple[Session, Session], monkeypatch
) -> None:
    monkeypatch.chdir(ROOT)  # scenario paths (and so error messages) as the plugin sees them
    scenario = load_scenario(path)
    stack = harness_stack.stack.name
    by_process, by_fork = (session.run_scenario(scenario, stack) for session in sessions)
    expected, observed = store.dump(observe(by_process)), store.dump(observe(by_fork))
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), observed.splitlines(True), "subprocess runner", "fork runner"
        )
    )
    assert not diff, f"{path}: the runners observe different things:\n{diff}"
    assert (by_process.error is None) == (by_fork.error is None), (by_process.error, by_fork.error)


def test_the_sample_is_in_the_library_and_the_selection_is_there() -> None:
    """The faithfulness test above must not silently cover nothing, nor a scenario that is gone."""
    assert set(SELECTIONS["sample"]) <= set(LIBRARY), set(SELECTIONS["sample"]) - set(LIBRARY)
    assert Path("scenarios/article/article.yaml") in SCENARIO_FILES
    assert len(LIBRARY) > len(SELECTIONS["sample"]) >= 6
    assert SCENARIO_FILES in (SELECTIONS["sample"], LIBRARY)


def test_an_unknown_selection_is_refused_with_the_choices() -> None:
    env = {**os.environ, FAITHFULNESS_ENV: "most"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert f"{FAITHFULNESS_ENV}='most': use one of sample, all" in done.stdout + done.stderr


PROBE = """\
import json, os, sys
print(json.dumps({
    "argv": sys.argv,
    "path0": sys.path[0],
    "cwd": os.getcwd(),
    "env": dict(os.environ),
    "name": __name__,
    "file": __file__,
    "main_file": sys.modules["__main__"].__file__,
    "stdin": os.path.realpath(f"/proc/self/fd/0"),
    "stdout_tty": sys.stdout.isatty(),
    "encoding": [sys.stdout.encoding, sys.stderr.encoding],
    "sid_is_pid": os.getsid(0) == os.getpid(),
    "app_loaded": "app" in sys.modules or "flask_migrate_test" in sys.modules,
    "bytecode": sys.dont_write_bytecode,
}))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def _probe(stack: StackEnv, folder: Path) -> Path:
    script = folder / "probe"
    script.write_text(f"#!{stack.executable('python')}\n{PROBE}")
    script.chmod(0o755)
    return script


def test_a_child_looks_like_a_new_process(harness_stack: StackEnv, forkserver: ForkServer, workdir) -> None:
    script = _probe(harness_stack, workdir)
    env = commands.reader_env(harness_stack.bin_dir)
    real = commands.run([str(script), "3"], workdir, env)
    forked = forkserver.run([str(script), "3"], workdir, env)
    assert (forked.exit_code, forked.stderr) == (real.exit_code, real.stderr) == (3, "to stderr\n")
    seen, expected = json.loads(forked.stdout), json.loads(real.stdout)
    assert seen == expected
    assert seen["stdin"] == os.devnull and not seen["app_loaded"] and "FLASK_APP" not in seen["env"]


EXITS = {
    "atexit and unflushed output": 'import atexit\natexit.register(print, "bye")\nprint("partial", end="")\n',
    "exit with a message": 'import sys\nsys.exit("fatal: no app")\n',
    "exit status above 255": "import sys\nsys.exit(257)\n",
    "bare SystemExit": "raise SystemExit\n",
    "non-daemon thread": (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
    ),
    "uncaught exception": 'def f():\n    raise RuntimeError("deep")\nf()\n',
}


@pytest.mark.parametrize("source", EXITS.values(), ids=EXITS.keys())
def test_a_child_exits_like_a_new_process(
    source: str, harness_stack: StackEnv, forkserver: ForkServer, workdir: Path
) -> None:
    """The child skips module teardown (docs/performance.md); what can be observed must not change."""
    script = workdir / "script"
    script.write_text(f"#!{harness_stack.executable('python')}\n{source}")
    script.chmod(0o755)
    env = commands.reader_env(harness_stack.bin_dir)
    real = commands.run([str(script)], workdir, env)
    forked = forkserver.run([str(script)], workdir, env)
    assert (forked.exit_code, forked.stdout, forked.stderr) == (real.exit_code, real.stdout, real.stderr)


def test_flask_cli_output_is_byte_identical(harness_stack: StackEnv, forkserver: ForkServer, workdir) -> None:
    """Help, a usage error, a missing .flaskenv and a traceback from the models: same bytes."""
    project = create_project(workdir / "project", NO_DATABASE)
    bare = workdir / "bare"
    bare.mkdir()
    cases: list[tuple[Path, list[str]]] = [(project.root, ["--help"]), (project.root, ["nonsense"])]
    cases.append((bare, ["current"]))  # no .flaskenv: Flask must not find the app
    by_process = SubprocessRunner(harness_stack, 60).flask_db
    by_fork = ForkRunner(harness_stack, 60, server=forkserver).flask_db
    results = [(by_process(folder, args), by_fork(folder, args)) for folder, args in cases]
    project.write_models('raise ValueError("broken models")\n')
    results.append((by_process(project.root, ["migrate"]), by_fork(project.root, ["migrate"])))
    for real, forked in results:
        assert (forked.exit_code, forked.stdout, forked.stderr) == (real.exit_code, real.stdout, real.stderr)
    assert [real.exit_code for real, _ in results] == [0, 2, 2, 1]
    assert results[-1][1].stderr.startswith(
        f'Traceback (most recent call last):\n  File "{harness_stack.bin_dir}'
    )
    assert results[-1][1].stderr.rstrip().endswith("ValueError: broken models")


def test_timeout_kills_the_command_and_what_it_started(
    harness_stack: StackEnv, forkserver: ForkServer, workdir
) -> None:
    """The timeout is derived from a measured run of the same models without the sleep, so that a
    busy machine cannot expire it before the models print (it did, with a fixed 3 seconds)."""
    project = create_project(workdir / "project", NO_DATABASE)
    pids = workdir / "pids"
    models = (
        "import os, subprocess, sys, time\n"
        "sleeper = subprocess.Popen(['sleep', '600'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{sleeper.pid}}')\n"
        "print('waiting', flush=True)\n"
    )
    project.write_models(models + "sleeper.kill()\n")
    measured = ForkRunner(harness_stack, 600, server=forkserver).flask_db(project.root, ["--help"])
    assert measured.exit_code == 0 and "waiting" in measured.stdout, measured.stderr
    project.write_models(models + "time.sleep(600)\n")
    timeout = timeout_after(measured.seconds)
    result = ForkRunner(harness_stack, timeout, server=forkserver).flask_db(project.root, ["migrate"])
    assert result.timed_out and result.exit_code is None
    assert result.seconds < 600  # stopped, not waited for
    assert "waiting" in result.stdout  # output so far is kept
    child, grandchild = (int(p) for p in pids.read_text().split())
    _wait_until(lambda: not _alive(grandchild), f"the killed command's child {grandchild} to end")
    assert not _alive(child) and not _alive(grandchild)
    # the server goes on serving (not in the project: any command there imports the models)
    flask = str(harness_stack.executable("flask"))
    env = commands.reader_env(harness_stack.bin_dir)
    assert forkserver.run([flask, "--version"], workdir, env).exit_code == 0


def _wait_until(condition: Callable[[], bool], what: str, limit: float = 300.0) -> None:
    """Poll until `condition` holds. The limit only turns a hang into a failure; it is far above
    what any machine needs, so load makes the test slower, never red."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"waited {limit:g}s for {what}"
        time.sleep(0.05)


# A stand-in server that answers a request with its two lines in ONE write, as a fast command's
# `child` line and reply reach the harness together on a busy machine.
TWO_LINES_AT_ONCE = """\
import json, os, sys
os.write(1, (json.dumps({"ready": True, "pid": os.getpid(), "preimported": []}) + "\\n").encode())
sys.stdin.readline()
reply = {"exit_code": 3, "timed_out": False, "stdout": "b2s=", "stderr": ""}
os.write(1, (json.dumps({"child": os.getpid()}) + "\\n" + json.dumps(reply) + "\\n").encode())
sys.stdin.readline()
"""


def test_a_reply_that_arrives_with_the_child_line_is_read(harness_stack: StackEnv, workdir: Path) -> None:
    """Regression: reading the `child` line must not swallow the reply behind it. (It did: the
    buffered `readline` took both lines and the next `select` waited for bytes already read,
    until "fork server ... did not answer within 150s while running []".)"""
    process = subprocess.Popen(
        [sys.executable, "-c", TWO_LINES_AT_ONCE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,  # `child` is itself: a failing read kills that group, nothing else
    )
    server = ForkServer(stack=harness_stack, process=process, log=tempfile.TemporaryFile())  # noqa: SIM115 (closed in stop)
    try:
        result = server.run(["flask"], workdir, {}, timeout=1)
    finally:
        server.stop()
    assert (result.exit_code, result.stdout, result.timed_out) == (3, "ok", False)


def test_stop_leaves_no_process(harness_stack: StackEnv) -> None:
    server = ForkServer.start(harness_stack)
    pid = server.pid
    assert _alive(pid) and server.hello["ready"] and "flask" in server.hello["preimported"]
    server.stop()
    server.stop()  # twice is fine
    assert not _alive(pid)


def test_a_dead_server_is_reported_with_what_to_do(harness_stack: StackEnv, workdir) -> None:
    server = ForkServer.start(harness_stack)
    os.kill(server.pid, 9)
    server.process.wait()
    with pytest.raises(Exception, match=r"(?s)fork server for stack .* is not running.*--runner subprocess"):
        server.run([str(harness_stack.executable("flask")), "--help"], workdir, {})
    assert not _alive(server.pid)
