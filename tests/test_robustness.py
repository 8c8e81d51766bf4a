"""Failing well: bad scenario input, failing migrations, hangs, and the throwaway server's exposure.

Each test runs the harness as a user runs it (a pytest subprocess through pytester, or the runner
on the session's server) and asserts two things: the message the user sees, and that nothing is
left behind (no ``mh_*`` database, no ``migrate-harness-*`` folder). The inner runs get a
``TMPDIR`` of their own, so their leftovers are told apart from those of runs going on beside them.
The cases and what the user sees are listed in docs/robustness.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import OWNERS, STACK_CACHE, one_table, processes_in, session_for, timeout_for

from harness import account
from harness.database import leftover_databases
from harness.observe.normalise import observe
from harness.scenario import ScenarioError, parse_scenario
from harness.server import Server, ThrowawayServer
from harness.stacks import StackEnv

pytestmark = pytest.mark.needs_server

scenario_text = one_table


class Inner:
    """A folder with scenarios, run by an inner pytest on the session's server."""

    def __init__(self, pytester: pytest.Pytester, server: Server, tmpdir: Path) -> None:
        self.pytester, self.server, self.tmpdir = pytester, server, tmpdir
        self.url = server.url.render_as_string(hide_password=False)

    def write(self, name: str, text: str) -> Path:
        path = self.pytester.path / "scenarios" / name
        path.write_text(text, encoding="utf-8")
        return path

    def run(self, *args: str) -> pytest.RunResult:
        """The fork runner unless `args` name another (tests/test_fastrunner.py proves it faithful)."""
        return self.pytester.runpytest_subprocess(
            "--pg-url", self.url, "-p", "no:cacheprovider", "--runner", "fork", *args
        )

    def assert_nothing_left(self, *scenario_ids: str) -> None:
        """No temporary folder in the inner run's TMPDIR, no database of its scenarios on the server."""
        assert not [p.name for p in self.tmpdir.iterdir() if p.name.startswith("migrate-harness-")]
        slugs = tuple(f"mh_{i}_" for i in scenario_ids)
        assert [d for d in leftover_databases(self.server) if d.startswith(slugs)] == []


@pytest.fixture
def open_tmpdir() -> Iterator[Path]:
    """A TMPDIR of its own that every account can enter: as root, scenario code runs as the
    scenario account, which cannot enter pytest's own tmp_path (under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="mh-test-tmp-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def inner(pytester: pytest.Pytester, harness_server: Server, monkeypatch, open_tmpdir: Path) -> Inner:
    # pytester gives the inner run a fresh HOME; keep the stacks' cache where it is
    monkeypatch.setenv("MIGRATE_HARNESS_CACHE", STACK_CACHE)
    monkeypatch.setenv("TMPDIR", str(open_tmpdir))
    (pytester.path / "scenarios").mkdir()
    return Inner(pytester, harness_server, open_tmpdir)


# --- bad input -------------------------------------------------------------------------------

BAD_FILES = {
    "malformed.yaml": (
        "id: malformed\ntitle: t\nsteps:\n  - name: s\n    commands: [init\n",
        "scenarios/malformed.yaml:6: not valid YAML: expected ',' or ']', but got '<stream end>'",
    ),
    "unknown_key.yaml": (
        "id: unknown_key\ntitle: t\nsteps:\n  - name: s\n    comands: [init]\n",
        "scenarios/unknown_key.yaml:5: steps[0]: unknown key 'comands'; allowed keys here: commands, "
        "models, name",
    ),
    "missing_field.yaml": (
        "id: missing_field\nsteps:\n  - name: s\n    commands: [init]\n",
        "scenarios/missing_field.yaml:1: (top level): 'title' is a required property",
    ),
    "wrong_type.yaml": (
        "id: wrong_type\ntitle: t\nsteps:\n  - name: s\n    commands:\n      - migrate: [a, list]\n",
        "scenarios/wrong_type.yaml:6: steps[0].commands[0].migrate: ['a', 'list'] is not of type "
        "'null', 'string', 'number' or 'object'",
    ),
}


def test_bad_scenario_files_are_collection_errors_naming_file_line_and_key_and_the_others_run(inner):
    inner.write("good.yaml", scenario_text("good"))
    for name, (text, _) in BAD_FILES.items():
        inner.write(name, text)
    result = inner.run("--snapshot-update")
    result.assert_outcomes(passed=1, errors=len(BAD_FILES))
    out = result.stdout.str()
    for name, (_, message) in BAD_FILES.items():
        assert message in out, name
        assert f"ERROR scenarios/{name}" in out
    assert "Traceback" not in out
    inner.assert_nothing_left("good")


MODEL_ERRORS = {
    "syntax": (
        OWNERS + "          name = db.Column(db.String(50)\n",
        ['*File "scenarios/syntax.yaml", line 10 (app/models.py line *)*', "*SyntaxError: *"],
    ),
    "name": (
        OWNERS + "          name = db.Column(Strin(50))\n",
        [
            '*File "scenarios/name.yaml", line 10 (app/models.py line *), in Owner*',
            "*NameError: name 'Strin' is not defined*",
        ],
    ),
    "mapping": (
        "      class Owner(db.Model):\n"
        '          __tablename__ = "owners"\n\n'
        "          name = db.Column(db.String(50))\n",
        [
            '*File "scenarios/mapping.yaml", line 6 (app/models.py line *), in <module>*',
            "*ArgumentError: Mapper*could not assemble any primary key columns for mapped table 'owners'*",
        ],
    ),
}


@pytest.mark.parametrize("kind", sorted(MODEL_ERRORS))
def test_broken_model_code_fails_the_step_with_scenario_file_lines(inner, kind):
    models, lines = MODEL_ERRORS[kind]
    text = scenario_text(kind, models)
    inner.write(f"{kind}.yaml", text)
    init_line = text.splitlines().index("      - init") + 1
    result = inner.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*scenarios/{kind}.yaml:{init_line}: step 'owners', command `flask db init`: failed*",
            *lines,
        ]
    )
    assert "/app/models.py" not in result.stdout.str(), "a path into the temporary project leaked"
    inner.assert_nothing_left(kind)


def _run(
    text: str, stack: StackEnv, server: Server, timeout: float = 120.0, keep: Path | None = None
) -> tuple[object, dict]:
    """Run a scenario text through a session, as the plugin does; (the run, its observation)."""
    scenario = parse_scenario(text, Path(f"scenarios/{text.split()[1]}.yaml"))
    with session_for(server, timeout=timeout, keep_projects=keep) as session:
        run = session.run_scenario(scenario, stack.stack.name)
    return run, observe(run)


def _databases_of(server: Server, scenario_id: str) -> list[str]:
    return [d for d in leftover_databases(server) if d.startswith(f"mh_{scenario_id}_")]


# Quotes, unicode, shell metacharacters and a leading dash: with a shell anywhere, `touch` would
# leave files behind, `$HOME` would be expanded and the dash would read as an option.
ODD_MESSAGE = '--sql it\'s "quoted" — ünïcödé ✓; $(touch pwned) `touch pwned2` | cat > out.txt & $HOME *'


def test_a_migrate_message_with_quotes_unicode_and_shell_metacharacters_passes_through_unchanged(
    harness_stack, harness_server, tmp_path
):
    text = scenario_text("odd_message").replace(
        "create owners table", json.dumps(ODD_MESSAGE, ensure_ascii=False)
    )
    run, observed = _run(text, harness_stack, harness_server, keep=tmp_path)
    assert run.error is None, run.error
    revision = observed["steps"][0]["migration"]["revisions"][0]
    assert revision["message"] == ODD_MESSAGE
    assert "op.create_table('owners'" in revision["upgrade"], "--sql must not have been taken as an option"
    (kept,) = tmp_path.iterdir()
    made = sorted(p.name for p in kept.rglob("*") if p.name in ("pwned", "pwned2", "out.txt"))
    assert made == []
    (revision_file,) = (kept / "project" / "migrations" / "versions").glob("*.py")
    assert ODD_MESSAGE in revision_file.read_text(encoding="utf-8")
    assert _databases_of(harness_server, "odd_message") == []


def test_paths_and_names_in_a_scenario_cannot_reach_outside_its_project(
    harness_stack, harness_server, tmp_path
):
    # a scenario id is a file and database name: no separators, no dots
    with pytest.raises(ScenarioError, match=r"escape.yaml:1: id: '\.\./x' does not match"):
        parse_scenario(scenario_text("../x"), Path("scenarios/escape.yaml"))
    # Migrate(directory=...) would put the migrations folder anywhere on the machine
    moved = scenario_text("escape").replace("steps:", "migrate_options:\n  directory: /tmp/elsewhere\nsteps:")
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(moved, Path("scenarios/escape.yaml"))
    assert str(exc.value).startswith(
        "scenarios/escape.yaml:4: migrate_options: 'directory' cannot be set by a scenario"
    )
    # a migrate message becomes part of a file name: Alembic keeps only its word characters
    text = scenario_text("escape").replace("create owners table", "../../../../outside")
    run, observed = _run(text, harness_stack, harness_server, keep=tmp_path)
    assert run.error is None, run.error
    (kept,) = tmp_path.iterdir()
    (revision_file,) = [p for p in kept.rglob("*.py") if "outside" in p.name]
    assert revision_file.parent == kept / "project" / "migrations" / "versions"
    assert observed["steps"][0]["migration"]["revisions"][0]["message"] == "../../../../outside"


def test_scenario_code_runs_in_its_temporary_project_without_the_harness_environment(
    harness_stack, harness_server, monkeypatch
):
    # what the harness's own process has, and a reader's shell would not
    monkeypatch.setenv("MIGRATE_HARNESS_PG_URL", harness_server.url.render_as_string(hide_password=False))
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw9")
    models = (
        "      import os, sys\n"
        "      print('CWD', os.getcwd(), 'FILE', __file__, 'PATH0', os.path.abspath(sys.path[0]))\n"
        "      print('ENV', sorted(k for k in os.environ if k.startswith(('MIGRATE_HARNESS', 'PYTEST'))))\n"
        + OWNERS
    )
    run, _ = _run(scenario_text("confined", models), harness_stack, harness_server)
    assert run.error is None, run.error
    root = next(k for k, v in run.replacements.items() if v == "<project>")
    output = run.steps[0].commands[0].result.output
    assert f"CWD {root} FILE {root}/app/models.py PATH0 {root}" in output
    assert "ENV []" in output, output
    assert not Path(root).exists()


SECOND_STEP = """\
  - name: add email
{second}    commands:
      - migrate: add email
      - upgrade
"""


def two_steps(second: str) -> str:
    """The one-table scenario, then a step that may (or may not) add a column."""
    return one_table("no_change") + SECOND_STEP.format(second=second)


def test_a_migrate_that_finds_no_change_where_the_snapshot_expects_ops_says_so(inner):
    with_email = OWNERS + "          email = db.Column(db.String(255))\n"
    second = "    models: |\n" + with_email
    inner.write("no_change.yaml", two_steps(second))
    inner.run("--snapshot-update").assert_outcomes(passed=1)
    # the author forgets the second step's models: it keeps the first step's, nothing changes
    inner.write("no_change.yaml", two_steps(""))
    result = inner.run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "step 'add email': `flask db migrate` found no change, but the snapshot expects 1 operation(s): "
            "add_column owners email. Did the step's models change? (a step without `models` keeps the "
            "previous step's)",
            "observations differ from scenarios/__snapshots__/no_change.yaml (- expected, + observed):",
        ]
    )
    inner.assert_nothing_left("no_change")


# --- failing migrations ----------------------------------------------------------------------

NOT_NULL = """\
id: not_null_rows
title: a NOT NULL column added to a table that holds a row
steps:
  - name: owners with one row
    models: |
      class Owner(db.Model):
          __tablename__ = "owners"

          id = db.Column(db.Integer, primary_key=True)
    commands:
      - init
      - migrate: create owners table
      - upgrade
      - sql: INSERT INTO owners DEFAULT VALUES
  - name: a required email
    models: |
      class Owner(db.Model):
          __tablename__ = "owners"

          id = db.Column(db.Integer, primary_key=True)
          email = db.Column(db.String(255), nullable=False)
    commands:
      - migrate: add email
      - upgrade:
        expect: failure
      - query: SELECT id FROM owners
"""


def test_an_upgrade_postgresql_rejects_is_an_observation_with_the_rolled_back_state(
    harness_stack, harness_server
):
    run, observed = _run(NOT_NULL, harness_stack, harness_server)
    assert run.error is None, run.error
    step = observed["steps"][1]
    upgrade = step["commands"][1]
    assert upgrade["command"] == "flask db upgrade" and upgrade["exit"] == 1
    assert upgrade["expect"] == "failure"
    assert 'column "email" of relation "owners" contains null values' in upgrade["error"]
    # the transaction rolled back: still at the first revision, no email column, the row kept
    assert step["schema"]["alembic_version"] == ["<rev1>"]
    assert [c["name"] for c in step["schema"]["tables"]["owners"]["columns"]] == ["id"]
    assert step["commands"][2]["rows"] == [[1]]
    # unexpected, the same failure stops the scenario with the database's reason and what to do
    run, _ = _run(
        NOT_NULL.replace("      - upgrade:\n        expect: failure\n", "      - upgrade\n"),
        harness_stack,
        harness_server,
    )
    assert run.error.startswith(
        "scenarios/not_null_rows.yaml:24: step 'a required email', command `flask db upgrade`: "
        "failed unexpectedly: sqlalchemy.exc.IntegrityError: (psycopg2.errors.NotNullViolation) "
        'column "email" of relation "owners" contains null values\n'
    ), run.error
    assert 'column "email" of relation "owners" contains null values' in run.error
    assert "What to do: fix the models or the command, or mark the command `expect: failure`" in run.error
    assert _databases_of(harness_server, "not_null_rows") == []


# --- faults ----------------------------------------------------------------------------------


OWNERS_PRINTING = "      print('models: about to wait for ever', flush=True)\n" + OWNERS
HANGING_MODELS = "      import time\n" + OWNERS_PRINTING.replace("\n", "\n      time.sleep(600)\n", 1)


def test_a_hanging_command_is_stopped_at_its_timeout_with_its_output_so_far(
    inner, harness_stack, harness_server
):
    # The timeout must outlast `flask db init` importing the app up to the models' print: it is
    # derived from the same scenario run without the sleep, so a loaded machine lengthens it.
    measured, _ = _run(scenario_text("hangs", OWNERS_PRINTING), harness_stack, harness_server)
    assert measured.error is None, measured.error
    timeout = timeout_for(measured)
    inner.write("hangs.yaml", scenario_text("hangs", HANGING_MODELS))
    result = inner.run("--command-timeout", str(timeout))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*scenarios/hangs.yaml:14: step 'owners', command `flask db init`: timed out after {timeout}s; "
            "output so far:",
            "models: about to wait for ever",
            "What to do: look for a hang in the models or the migration, or raise --command-timeout",
        ]
    )
    assert processes_in(inner.tmpdir) == []
    inner.assert_nothing_left("hangs")


def test_hanging_sql_is_stopped_at_the_command_timeout(harness_stack, harness_server):
    text = scenario_text("sql_hangs").replace(
        "      - upgrade\n", "      - upgrade\n      - sql: SELECT pg_sleep(600)\n"
    )
    # the timeout also bounds init, migrate and upgrade before the sleep: derived from them
    measured, _ = _run(scenario_text("sql_hangs"), harness_stack, harness_server)
    assert measured.error is None, measured.error
    started = time.monotonic()
    run, _ = _run(text, harness_stack, harness_server, timeout=timeout_for(measured))
    assert time.monotonic() - started < 590  # stopped by statement_timeout, not waited for
    assert run.error.startswith(
        "scenarios/sql_hangs.yaml:14: step 'owners', command `sql: SELECT pg_sleep(600)`: "
        "failed unexpectedly: canceling statement due to statement timeout\n"
    ), run.error
    assert _databases_of(harness_server, "sql_hangs") == []


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def _sleeping(server: Server) -> bool:
    engine = sa.create_engine(server.url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"
            return bool(conn.execute(sa.text(query)).scalar())
    finally:
        engine.dispose()


def test_the_server_stopped_mid_run_is_a_clear_failure_and_the_other_scenarios_are_reported(inner):
    # a server of its own, to stop while the first scenario's SQL waits on it
    throwaway = ThrowawayServer()
    server = throwaway.start()
    try:
        text = scenario_text("a_first").replace(
            "      - upgrade\n", "      - upgrade\n      - sql: SELECT pg_sleep(600)\n"
        )
        inner.write("a_first.yaml", text)
        inner.write("b_second.yaml", scenario_text("b_second"))
        inner.write("c_third.yaml", scenario_text("c_third"))
        url = server.url.render_as_string(hide_password=False)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--pg-url",
                url,
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                "--runner",
                "fork",
            ],
            cwd=inner.pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            # limits that only turn a hang into a failure, far beyond a loaded machine's seconds
            _wait_for(lambda: _sleeping(server), 300, "the first scenario's pg_sleep")
        finally:
            throwaway.stop()
        out, _ = proc.communicate(timeout=300)  # no hang
    finally:
        throwaway.stop()
    assert proc.returncode == 1, out  # tests failed; not interrupted (2) nor an internal error (3)
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert "3 failed" in out
    assert (
        "scenarios/a_first.yaml:14: step 'owners', command `sql: SELECT pg_sleep(600)`: "
        "the PostgreSQL server went away: " in out
    )
    for later in ("b_second", "c_third"):
        assert (
            f"scenarios/{later}.yaml: cannot create the scenario's database: connection to server at" in out
        )
    assert "What to do: check that the PostgreSQL server is running and reachable" in out
    assert not [p for p in inner.tmpdir.iterdir() if p.name.startswith("migrate-harness-")]


# --- security --------------------------------------------------------------------------------

ARTICLE_PASSWORD = "flask_migrate_test"  # the article's DATABASE_URL: flask_migrate_test:flask_migrate_test@


def test_the_throwaway_server_listens_on_loopback_only_with_a_fresh_password():
    servers = [ThrowawayServer(), ThrowawayServer()]
    try:
        first, second = (t.start() for t in servers)
        folder = servers[0].folder
        engine = sa.create_engine(first.url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                settings = {
                    name: conn.execute(sa.text(f"SHOW {name}")).scalar()
                    for name in ("listen_addresses", "unix_socket_directories")
                }
                rules = conn.execute(
                    sa.text("SELECT type, auth_method FROM pg_hba_file_rules WHERE error IS NULL")
                ).all()
        finally:
            engine.dispose()
        assert settings == {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(folder)}
        assert (folder.stat().st_mode & 0o077) == 0, "the socket's folder is private"
        # TCP needs the password; only the private socket trusts
        assert {auth for kind, auth in rules if kind != "local"} == {"scram-sha-256"}
        passwords = {first.url.password, second.url.password}
        assert len(passwords) == 2 and ARTICLE_PASSWORD not in passwords
        assert all(len(p) >= 20 for p in passwords)
        refused = sa.create_engine(first.url.set(password=ARTICLE_PASSWORD), poolclass=sa.pool.NullPool)
        with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
            refused.connect().close()
    finally:
        for t in servers:
            t.stop()


# Each escape the scenario's own code (model text is Python) might try; it writes what it found
# into its project folder, kept for the test to read.
ESCAPES = """\
      import json, os, pathlib
      found = {"secret": os.environ.get("CI_SECRET_TOKEN"), "env": sorted(os.environ)}
      found["flaskenv"] = pathlib.Path(".flaskenv").read_text()
      pathlib.Path("escapes.json").write_text(json.dumps(found))
"""
COPY_PROGRAM = (
    "      - sql: COPY (SELECT 1) TO PROGRAM 'touch /tmp/mh-escaped-copy-program'\n        expect: failure\n"
)
READ_FILE = "      - sql: SELECT pg_read_file('postgresql.conf')\n        expect: failure\n"


def test_scenario_code_gets_no_secret_no_admin_url_and_no_server_program(
    harness_stack, harness_server, monkeypatch, tmp_path
):
    """The scenario's project and SQL see one role that owns its database and nothing more: no
    secret from the harness's environment, no admin URL in .flaskenv, no COPY ... PROGRAM and no
    server file reads."""
    monkeypatch.setenv("CI_SECRET_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("PGPASSWORD", "pg-password")
    text = scenario_text("escapes", ESCAPES + OWNERS) + COPY_PROGRAM + READ_FILE
    run, _ = _run(text, harness_stack, harness_server, keep=tmp_path)
    assert run.error is None, run.error
    (kept,) = tmp_path.iterdir()
    found = json.loads((kept / "project" / "escapes.json").read_text())
    assert found["secret"] is None
    assert "PGPASSWORD" not in found["env"]
    assert not [k for k in found["env"] if k.startswith(("MIGRATE_HARNESS", "PYTEST", "CI_"))]
    admin = harness_server.url
    assert str(admin.password) not in found["flaskenv"]
    assert f"//{admin.username}:" not in found["flaskenv"], "the project must not connect as the admin role"
    copy, read = run.steps[0].commands[-2:]
    assert "pg_execute_server_program" in copy.sql_error, copy.sql_error
    assert "permission denied" in read.sql_error, read.sql_error
    assert not Path("/tmp/mh-escaped-copy-program").exists()
    assert _databases_of(harness_server, "escapes") == []


def test_a_role_without_createdb_fails_once_with_one_line(harness_server):
    """--pg-url naming a role that cannot create databases: one line before any scenario, naming
    the grant, instead of a long traceback per scenario."""
    from harness.server import ServerError, existing_server

    admin = harness_server.url.set(drivername="postgresql+psycopg2")
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE ROLE mh_test_weak LOGIN PASSWORD 'weak-pw'"))
    try:
        url = admin.set(username="mh_test_weak", password="weak-pw")
        with pytest.raises(ServerError) as raised:
            existing_server(url.render_as_string(hide_password=False))
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text("DROP ROLE mh_test_weak"))
        engine.dispose()
    message = str(raised.value)
    print(f"role without CREATEDB: {message}")
    assert "\n" not in message
    assert "'mh_test_weak'" in message and "lacks CREATEDB and CREATEROLE" in message
    assert "ALTER ROLE mh_test_weak CREATEDB CREATEROLE" in message
    assert "weak-pw" not in message


# Scenario code (model text is Python) trying each way out as the harness's root would allow:
# write outside its folder, read a secret or the server's admin password from the harness's
# environment or command line in /proc, from the server's password file or any file in TMPDIR,
# or log in as the admin through the server's private socket. It writes what it got into its
# project folder (kept with --keep-projects) for the test to read.
ROOT_ESCAPES = """\
      import glob, json, os, pathlib
      def attempt(action):
          try:
              return repr(action())
          except Exception as exc:
              return "refused: " + type(exc).__name__
      got = {{"whoami": os.geteuid(), "writes": {{}}, "reads": {{}}, "env": sorted(os.environ)}}
      for target in {targets}:
          got["writes"][target] = attempt(lambda: pathlib.Path(target, "mh-escaped").write_text("x"))
      readable = glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline")
      for folder in {folders}:
          readable += glob.glob(folder + "/**", recursive=True) + [folder + "/pwfile"]
      for path in readable:
          try:
              got["reads"][path] = pathlib.Path(path).read_bytes().decode(errors="replace")
          except Exception:
              pass
      import psycopg2
      login = lambda: psycopg2.connect(host={socket!r}, user="postgres", dbname="postgres")
      got["socket_login"] = attempt(login)
      pathlib.Path("escapes.json").write_text(json.dumps(got))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement applies when the harness runs as root")
@pytest.mark.parametrize("runner", ["subprocess", "fork"])
def test_scenario_code_run_as_root_cannot_write_outside_nor_read_the_admin_url_or_a_secret(
    inner, harness_stack, harness_server, monkeypatch, tmp_path, runner
):
    """The inner harness runs as root with a secret and the admin URL in its environment (the
    documented way to pass it, MIGRATE_HARNESS_PG_URL) and its own throwaway servers' password
    files in TMPDIR; the scenario's code finds none of them and writes nowhere of the harness's."""
    admin = harness_server.url.render_as_string(hide_password=False)
    password = str(harness_server.url.password)
    monkeypatch.setenv("MIGRATE_HARNESS_PG_URL", admin)
    monkeypatch.setenv("CI_SECRET_TOKEN", "s3cr3t-token-for-confinement")
    # a throwaway server such as the inner run would start, with its password file and socket
    bystander = ThrowawayServer()
    try:
        other = bystander.start()
        repo = Path(account.__file__).resolve().parent.parent
        folders = [str(inner.tmpdir), str(bystander.folder)]
        targets = [str(repo), str(harness_stack.bin_dir), "/root", "/etc", *folders]
        models = ROOT_ESCAPES.format(targets=targets, folders=folders, socket=str(bystander.folder))
        inner.write("root_escapes.yaml", scenario_text("root_escapes", models + OWNERS))
        keep = tmp_path / "kept"
        result = inner.pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--runner", runner, "--snapshot-update", "--keep-projects", str(keep)
        )
    finally:
        bystander.stop()
    (kept,) = keep.iterdir()
    got = json.loads((kept / "project" / "escapes.json").read_text())
    assert result.ret == 0, result.stdout.str()
    escaped = {t: r for t, r in got["writes"].items() if not r.startswith("refused: PermissionError")}
    assert escaped == {}, f"scenario code wrote outside its folder: {escaped}"
    assert got["whoami"] == pwd_uid(account.SCENARIO_ACCOUNT) != 0
    secrets = {"the admin password": password, "the bystander's password": str(other.url.password)}
    secrets["the CI secret"] = "s3cr3t-token-for-confinement"
    leaks = [
        f"{what} in {path}" for path, text in got["reads"].items() for what, s in secrets.items() if s in text
    ]
    assert leaks == [], leaks
    assert any(path.endswith("/cmdline") for path in got["reads"]), "the probe read no /proc at all"
    assert got["socket_login"] == "refused: OperationalError", got["socket_login"]
    assert not [k for k in got["env"] if k.startswith(("MIGRATE_HARNESS", "CI_", "PG"))]
    inner.assert_nothing_left("root_escapes")
    for target in got["writes"]:
        assert not Path(target, "mh-escaped").exists()


def pwd_uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement applies when the harness runs as root")
def test_links_scenario_code_leaves_are_removed_before_the_harness_reads_through_them(
    harness_stack, harness_server, tmp_path
):
    """A symbolic link from the project to a file only root reads: the harness (root) would
    follow it when it reads or copies the project (here --keep-projects, which copies a link's
    target); the runner removes it after the command and says so on stderr."""
    secret = tmp_path / "root-only"
    secret.write_text("root-only-content")
    secret.chmod(0o600)
    link = f"      if not os.path.lexists('leak.txt'):\n          os.symlink({str(secret)!r}, 'leak.txt')\n"
    models = "      import os\n" + link + OWNERS
    keep = tmp_path / "kept"
    run, observed = _run(scenario_text("links", models), harness_stack, harness_server, keep=keep)
    assert run.error is None, run.error
    (kept,) = keep.iterdir()
    leaked = kept / "project" / "leak.txt"
    assert not leaked.exists(), f"the kept project holds {leaked.read_text()!r}"
    assert "root-only-content" not in json.dumps(observed)
    init = run.steps[0].commands[0].result
    assert "removed the link(s) this command made, which the harness (root) would" in init.stderr
    assert init.stderr.rstrip().endswith(": leak.txt"), init.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement applies when the harness runs as root")
def test_a_command_outside_a_folder_made_for_the_scenario_account_is_refused(harness_stack, tmp_path):
    from harness.runners import SubprocessRunner

    with pytest.raises(account.ConfinementError, match="only in folders made for it"):
        SubprocessRunner(harness_stack).command(["flask", "--version"], tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement applies when the harness runs as root")
def test_a_tmpdir_the_scenario_account_cannot_enter_fails_with_one_line(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with pytest.raises(account.ConfinementError) as raised:
        account.private_folder("migrate-harness-x-")
    message = str(raised.value)
    assert "\n" not in message and "set TMPDIR" in message and "drwx------" in message
    assert list(private.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="confinement applies when the harness runs as root")
def test_a_pg_url_password_on_a_command_line_is_warned_about(harness_server):
    """A command line is readable by every account in /proc (an environment is not): as root,
    a --pg-url whose password shows on one gets a warning naming the process and the remedy."""
    password = str(harness_server.url.password)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; print('ready', flush=True); sys.stdin.read()",
            f"--pg-url=postgresql://x:{password}@h/db",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        # Popen returns once execve has released it, before the kernel has set the new command
        # line (it reads empty until then): wait for the holder to say it runs
        assert holder.stdout.readline() == b"ready\n"
        assert account.command_lines_showing(password) == [holder.pid]
        with session_for(harness_server) as session, pytest.warns(UserWarning) as warned:
            session.server()
    finally:
        holder.communicate(b"")
    (warning,) = [str(w.message) for w in warned]
    assert f"process(es) {holder.pid}," in warning and "MIGRATE_HARNESS_PG_URL" in warning
    assert password not in warning
    assert account.command_lines_showing(password) == []
