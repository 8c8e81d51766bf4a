"""Driving one scenario through its steps: models written, commands run, everything recorded.

`execute` only observes. It runs each step's commands through the session's runner against
the scenario's database, reads the revision files and the schema after every step, checks the
invariants when the scenario ends at head, and returns a `ScenarioRun`. After every successful
``flask db upgrade`` without a target (or to ``head``) it checks that the database's
``alembic_version`` holds exactly the heads of the revision files, so an upgrade that exits 0
but applies nothing fails at that step, not one step later. The first unexpected
failure is kept as a message that names the scenario file, the step and what to do; whether
the scenario passed is for `judge` to say.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from harness import editing
from harness.commands_spec import SPECS, RevisionReferenceError, cap_rows
from harness.database import connection
from harness.observe import schema
from harness.observe.migration import Revision, RevisionFileError, read_revision
from harness.project import Project
from harness.records import CommandRecord, InvariantResult, ScenarioRun, StepRecord
from harness.runners.base import Runner, error_line
from harness.scenario import Command, Scenario, Step

# Alembic logs each change autogenerate finds as "INFO  [alembic.autogenerate.compare...] Detected
# ...". Other loggers also say "Detected" for things that are not changes (a SERIAL sequence).
DETECTED = re.compile(r"\[alembic\.autogenerate[^\]]*\] Detected (.+?)\s*$", re.MULTILINE)
DRIFT_CHECK_MESSAGE = "harness drift check"


def map_model_lines(text: str, project: Project, step: Step, scenario_path: Path) -> str:
    """Point tracebacks through app/models.py at the scenario file's own lines."""
    if not step.models_line:
        return text
    pattern = re.compile(r'File "[^"]*app/models\.py", line (\d+)')

    def repl(match: re.Match[str]) -> str:
        line = int(match.group(1))
        scenario_line = step.models_line + line - project.models_offset - 1
        return f'File "{scenario_path}", line {scenario_line} (app/models.py line {line})'

    return pattern.sub(repl, text)


def _run_sql(url: sa.URL, command: Command, record: CommandRecord, timeout: float) -> None:
    # The server stops a statement that outlives the command timeout (`SELECT pg_sleep(...)`, a
    # lock wait): a hang in the harness's own SQL is reported like a hanging `flask db` command.
    options = f"-c statement_timeout={max(1, int(timeout * 1000))}"
    engine = sa.create_engine(
        url, poolclass=sa.pool.NullPool, connect_args={"options": options, "connect_timeout": 10}
    )
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(command.arg or ""))
            if command.name == "query":
                record.rows, record.rows_total = cap_rows([[_plain(v) for v in row] for row in result])
    except sa.exc.DBAPIError as exc:
        record.sql_error = str(exc.orig).strip()
    finally:
        engine.dispose()


def applied_versions(url: sa.URL) -> list[str] | None:
    """The rows of the database's ``alembic_version`` (None when the table does not exist)."""
    with connection(url) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return sorted(r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version")))


def heads(revisions: list[Revision]) -> list[str]:
    """The revisions no other revision names as its down_revision (a merge names several)."""
    parents: set[str] = set()
    for rev in revisions:
        down = rev.down_revision
        parents.update(down if isinstance(down, tuple | list) else [down] if down else [])
    return sorted(r.revision for r in revisions if r.revision not in parents)


def upgrade_mismatch(applied: list[str] | None, expected: list[str]) -> str | None:
    """Why the database is not at the heads after an upgrade to head, or None when it is."""
    if applied == expected:
        return None
    at = "has no alembic_version table" if applied is None else f"is at {applied or '(no revision)'}"
    return f"exited 0 but the database {at}, not at the heads of the revision files {expected}"


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


class _Run:
    """State of one scenario run; `execute` drives it and never raises for scenario problems."""

    def __init__(
        self,
        scenario: Scenario,
        runner: Runner,
        project: Project,
        url: sa.URL,
    ):
        self.scenario, self.runner, self.project, self.url = scenario, runner, project, url
        self.timeout = runner.timeout
        self.run = ScenarioRun(scenario=scenario, stack=runner.stack)
        # The database as it stood before the first `upgrade` (whatever the scenario's own `sql:`
        # made): what `downgrade base` must give back. None until the first upgrade runs.
        self.baseline: dict[str, Any] | None = None

    def fail(self, step: Step, command: Command | None, what: str, todo: str) -> None:
        where = f"{self.scenario.path}:{command.line if command else step.line}"
        cmd = f", command `{command.label}`" if command else ""
        self.run.error = f"{where}: step {step.name!r}{cmd}: {what}\nWhat to do: {todo}"

    def execute(self) -> ScenarioRun:
        step, self.command = self.scenario.steps[0], None
        try:
            for step in self.scenario.steps:
                if not self._step(step):
                    return self.run
            self._invariants()
        except sa.exc.OperationalError as exc:
            # The server went away mid-run (stopped, crashed, unreachable): one plain sentence naming
            # the step, not an inspector traceback, and not the command's "fix the models" advice.
            self.fail(step, self.command, f"the PostgreSQL server went away: {first_line(exc)}", SERVER_GONE)
        return self.run

    def _step(self, step: Step) -> bool:
        record = StepRecord(step=step)
        self.run.steps.append(record)
        if step is self.scenario.steps[0] and self.scenario.hooks:
            self.project.write_hooks(self.scenario.hooks)
        if step.models is not None:
            self.project.write_models(step.models)
        for command in step.commands:
            if not self._command(step, record, command):
                record.schema = schema.catalog_schema(self.url)
                return False
        self.command = None
        record.schema = schema.catalog_schema(self.url)
        return True

    def _command(self, step: Step, record: StepRecord, command: Command) -> bool:
        self.command = command
        entry = CommandRecord(command=command)
        record.commands.append(entry)
        if command.name in ("sql", "query"):
            _run_sql(self.url, command, entry, self.timeout)
            failed, output = entry.sql_error is not None, entry.sql_error or ""
            headline = output.splitlines()[0] if output else ""
        elif command.name == "edit":
            entry.edit, problem = editing.run_edit(self.project, command, self.run)
            if problem:
                self.fail(step, command, f"the edit does not apply: {problem}", EDIT_TODO)
            return not problem
        else:
            if command.name == "upgrade" and self.baseline is None:
                self.baseline = schema.catalog_schema(self.url)
            before = set(self.project.revision_files())
            try:
                args = command.argv(editing.resolver(self.run))
            except RevisionReferenceError as exc:
                self.fail(step, command, str(exc), REFERENCE_TODO)
                return False
            result = self.runner.flask_db(self.project.root, args)
            entry.result = result
            output = map_model_lines(result.output, self.project, step, self.scenario.path)
            headline = error_line(output)
            if result.timed_out:
                self.fail(
                    step,
                    command,
                    f"timed out after {self.timeout:g}s; output so far:\n{output}",
                    "look for a hang in the models or the migration, or raise --command-timeout",
                )
                return False
            failed = not result.ok
            if SPECS[command.name].writes_revision and not failed:
                record.detected += DETECTED.findall(result.output)
                try:
                    record.revisions += [
                        read_revision(p) for p in sorted(set(self.project.revision_files()) - before)
                    ]
                except RevisionFileError as exc:
                    self.fail(step, command, str(exc), "check the stack's Alembic templates")
                    return False
        if failed and not (command.expect_failure or command.expect_any):
            self.fail(
                step,
                command,
                f"failed unexpectedly: {headline}\n{output}",
                "fix the models or the command, or mark the command `expect: failure` "
                "if the failure is what the scenario shows",
            )
            return False
        if command.expect_failure and not failed:
            self.fail(
                step,
                command,
                "succeeded, but the scenario expects it to fail",
                "remove `expect: failure` if success is now the right behaviour",
            )
            return False
        offline = bool(command.options.get("sql"))  # --sql prints the SQL and leaves the database
        if (
            command.name == "upgrade"
            and command.arg in (None, "head", "heads")
            and not failed
            and not offline
        ):
            return self._at_heads(step, command, output)
        return True

    def _at_heads(self, step: Step, command: Command, output: str) -> bool:
        """An upgrade to head must leave alembic_version holding exactly the files' heads."""
        try:
            expected = heads([read_revision(p) for p in self.project.revision_files()])
        except RevisionFileError as exc:
            self.fail(step, command, str(exc), "check the stack's Alembic templates")
            return False
        problem = upgrade_mismatch(applied_versions(self.url), expected)
        if problem:
            self.fail(
                step,
                command,
                f"{problem}\noutput:\n{output or '(none)'}",
                "an upgrade that applies nothing is a silent no-op: look in the output above for the "
                "database and the migrations folder it used, or an error it swallowed",
            )
            return False
        return True

    def _ends_at_head(self) -> bool:
        last = self.scenario.steps[-1].commands[-1]
        expected = not (last.expect_failure or last.expect_any)
        return last.name == "upgrade" and last.arg in (None, "head") and expected

    def _invariants(self) -> None:
        if not self._ends_at_head():
            return
        known = self.scenario.known_failures
        for name, check in (("autogenerate_clean", self._autogenerate_clean), ("roundtrip", self._roundtrip)):
            ok, detail = check()
            self.run.invariants.append(
                InvariantResult(name=name, ok=ok, detail=detail, known=known.get(name))
            )

    def _autogenerate_clean(self) -> tuple[bool, str]:
        """After the last upgrade, autogenerate must find nothing: models and database agree."""
        before = set(self.project.revision_files())
        result = self.runner.flask_db(self.project.root, ["migrate", "-m", DRIFT_CHECK_MESSAGE])
        new = sorted(set(self.project.revision_files()) - before)
        ops = []
        for path in new:
            try:
                ops += [op.as_dict() for op in read_revision(path).upgrade_ops]
            except RevisionFileError as exc:
                ops.append({"unreadable": str(exc)})
            path.unlink()
        if not result.ok:
            return False, f"`flask db migrate` failed (exit {result.exit_code}): {result.output[-500:]}"
        if new:
            return False, f"autogenerate still finds changes after the last upgrade: {ops}"
        return True, ""

    def _roundtrip(self) -> tuple[bool, str]:
        """Downgrade to base, then upgrade again, judged on the complete schema: at base the
        database must equal the baseline (as it stood before the first upgrade, with whatever the
        scenario's own `sql:` made), and after the upgrade it must equal the state before the
        downgrade. `alembic_version` is Alembic's bookkeeping: at base it must hold no row."""
        expected = schema.catalog_schema(self.url)
        down = self.runner.flask_db(self.project.root, ["downgrade", "base"])
        if not down.ok:
            return False, f"`flask db downgrade base` failed: {error_line(down.output)}"
        at_base = schema.catalog_schema(self.url)
        base_diff = _base_differences(self.baseline, at_base)
        up = self.runner.flask_db(self.project.root, ["upgrade"])
        if not up.ok:
            return False, f"upgrade after downgrade to base failed: {error_line(up.output)}" + (
                f" (at base: {schema.summarise_diff(base_diff)})" if base_diff else ""
            )
        if base_diff:
            return (
                False,
                f"downgrade to base did not restore the baseline: {schema.summarise_diff(base_diff)}",
            )
        again = schema.catalog_schema(self.url)
        changed = schema.schema_diff(expected, again, ("before the downgrade", "after the upgrade"))
        if changed:
            return False, f"schema differs after downgrade base + upgrade: {schema.summarise_diff(changed)}"
        return True, ""


def _base_differences(baseline: dict[str, Any] | None, at_base: dict[str, Any]) -> list[str]:
    """How the database at base differs from the baseline, `alembic_version` aside (its rows
    must be gone; the table itself may stay: Alembic creates it and never drops it)."""
    out = []
    if at_base["alembic_version"]:
        out.append(f"alembic_version still holds {', '.join(at_base['alembic_version'])}")
    if baseline is None:  # cannot happen when the scenario ends at head: it ran an upgrade
        return out + ["no baseline was observed before the first upgrade"]
    strip = lambda s: {k: v for k, v in s.items() if k != "alembic_version"}  # noqa: E731
    return out + schema.schema_diff(strip(baseline), strip(at_base), ("in the baseline", "at base"))


EDIT_TODO = (
    "make the edit match the file as the stack wrote it (`show` prints it; a diff's context lines "
    "must match exactly), or use `replace` or a new upgrade()/downgrade() body"
)
REFERENCE_TODO = (
    "refer only to revisions created earlier in the scenario: <rev1>, <rev2>... count them in order "
    "of creation, <rev:message> names one by its message"
)
SERVER_GONE = (
    "check that the PostgreSQL server is running and reachable (a throwaway server's log is in its "
    "migrate-harness-pg-* folder while it runs); the scenarios after this one fail the same way "
    "until it is back"
)


def first_line(exc: sa.exc.DBAPIError) -> str:
    return (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]


def execute(scenario: Scenario, runner: Runner, project: Project, url: sa.URL) -> ScenarioRun:
    """Run every step of `scenario` in `project` against the database at `url`."""
    return _Run(scenario, runner, project, url).execute()
