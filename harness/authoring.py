"""Authoring scenarios: scaffold a new file, and see what a scenario does before snapshotting it.

``python -m harness.authoring new scenarios/columns/my_change.yaml`` writes a commented template
that is valid as written (it runs: an owners table, then a column added), so an author edits a
working scenario instead of starting from a blank page.

``python -m harness.authoring show scenarios/columns/my_change.yaml [--stack NAME]`` runs one
scenario exactly as the test does (a `Session`: real ``flask db`` from the stack's environment, a
throwaway PostgreSQL unless ``--pg-url``/``MIGRATE_HARNESS_PG_URL`` names one) and prints each
step's commands, the migration files autogenerate wrote and the schema afterwards, then the
outcome `judge` gives, the same one pytest gives: it exits 1 exactly when the test would fail,
with the same reasons. It uses the fork runner unless ``--runner subprocess`` is given. The
server, the database and the temporary project are removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from harness import store
from harness.check import check_scenario
from harness.judge import FAIL, SKIP, XFAIL, Outcome
from harness.runners import ForkServerError
from harness.scenario import ScenarioError, load_scenario, parse_scenario, scenario_files
from harness.server import ServerError
from harness.session import DEFAULT_STACK, Options, Session, add_arguments, stop_on_sigterm
from harness.stacks import StackError

TEMPLATE = """\
# A scenario: model changes and the `flask db` commands a reader would run after each.
# Format and worked example: docs/scenarios.md. See what it does before snapshotting it:
#   python -m harness.authoring show {path}
# then record and review its snapshot:
#   tox -e update -- {path}
id: {id}  # unique across scenarios/; names the snapshot file __snapshots__/{id}.yaml
title: "Say what changes and what autogenerate does with it (e.g. '...: not detected')"
# migrate_options:            # keyword arguments for Migrate(app, db, ...), as a reader passes them
#   compare_server_default: true
#   include_object: {{code: include_object}}   # a hook function, defined in `hooks`
# hooks: |                    # Python written in app/__init__.py before Migrate(...)
#   def include_object(object, name, type_, reflected, compare_to):
#       return True
# fixes: [column_rename]      # a fix scenario: the ids of the pitfalls it repairs (detection table)
# known_failures:             # an invariant known not to hold, and why (fails if it starts holding)
#   roundtrip: "why downgrade base + upgrade does not come back the same"
steps:
  - name: the starting point
    # `models` replaces everything below `db = SQLAlchemy()` in app/models.py; a step without
    # `models` keeps the previous step's. Import what you need (import sqlalchemy as sa,
    # from sqlalchemy.dialects import postgresql).
    models: |
      class Owner(db.Model):
          __tablename__ = "owners"

          id = db.Column(db.Integer, primary_key=True)
          name = db.Column(db.String(50), nullable=False)
    commands:
      - init                          # flask db init
      - migrate: create owners table  # flask db migrate -m '...'
      - upgrade                       # flask db upgrade (or `upgrade: <target>`)
      - sql: INSERT INTO owners (name) VALUES ('Ada')     # SQL the harness runs itself
  - name: the change under study
    models: |
      class Owner(db.Model):
          __tablename__ = "owners"

          id = db.Column(db.Integer, primary_key=True)
          name = db.Column(db.String(50), nullable=False)
          phone = db.Column(db.String(20))
    commands:
      - migrate: add phone
      - upgrade
      - query: SELECT id, name, phone FROM owners ORDER BY id  # rows go into the snapshot
      - heads                         # any flask db command, bare, with a value or with options:
      - history:                      # stdout of heads/current/history/show/--sql is recorded
          rev_range: "<rev1>:"        # <rev1>, <rev2>... the run's revisions; <rev:add phone> by message
      # Adjust a revision before the next command ("please adjust!"): a new upgrade()/downgrade()
      # body, `replace: [{{old: ..., new: ...}}]` or `diff: |`; `revision: <rev2>` names another one.
      # - edit:
      #     upgrade: |
      #       op.add_column("owners", sa.Column("phone", sa.String(length=20), nullable=True))
      # A command that should fail: `- upgrade:` with `expect: failure` on the next line, and
      # `match: <regular expression of the error line>` and `why: <the reason>` beside it.
      # Ending with `upgrade` (to head) makes the harness check the invariants: autogenerate
      # finds nothing more, and downgrade base + upgrade gives the same schema back.
      - upgrade
"""


class AuthoringError(Exception):
    """Something the author can fix; the message says what."""


def scaffold(path: Path) -> Path:
    """Write the template to `path` (which must not exist) and check that it parses."""
    if path.suffix not in (".yaml", ".yml"):
        raise AuthoringError(f"{path}: a scenario file must end in .yaml")
    if "scenarios" not in path.resolve().parts[:-1]:
        raise AuthoringError(
            f"{path}: put scenarios under a scenarios/ folder, or pytest will not collect them"
        )
    if path.exists():
        raise AuthoringError(f"{path} already exists; choose another name or edit that file")
    scenario_id = re.sub(r"[^a-z0-9_-]+", "_", path.stem.lower()).strip("_-") or "scenario"
    root = next(folder for folder in path.resolve().parents if folder.name == "scenarios")
    for other in scenario_files(root) if root.is_dir() else []:
        if _declares(other, scenario_id):
            raise AuthoringError(
                f"{path}: the id {scenario_id!r} is already used by {other}; choose another file name "
                "(the id comes from it and names the snapshot files)"
            )
    text = TEMPLATE.format(path=path.as_posix(), id=scenario_id)
    parse_scenario(text, path)  # the template must stay valid: fail here rather than in the author's hands
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _indent(text: str, prefix: str = "    ") -> str:
    return (
        "".join(prefix + line if line.strip() else line for line in text.rstrip("\n").splitlines(True)) + "\n"
    )


def format_observation(data: dict[str, Any]) -> str:
    """The run as an author reads it: per step, the commands, the migration files, the schema."""
    out = [f"scenario {data['scenario']}: {data['title']}\n"]
    for number, step in enumerate(data["steps"], start=1):
        out.append(f"\n== step {number}: {step['name']}\n")
        for command in step["commands"]:
            status = "" if "exit" not in command else f"  [exit {command['exit']}]"
            out.append(f"  $ {command['command']}{status}\n")
            if "error" in command:
                out.append(f"    error: {command['error']}\n")
            if "rows" in command:
                out.append("    rows:\n" + _indent(store.dump(command["rows"]), "      "))
        migration = step.get("migration")
        if migration is not None:
            out.append(f"  migration files written: {migration['files']}\n")
            for line in migration["detected"]:
                out.append(f"    detected {line}\n")
            for rev in migration["revisions"]:
                out.append(
                    f"  -- {rev['revision']} ({rev['message']}), down_revision {rev['down_revision']}\n"
                )
                out.append("  def upgrade():\n" + _indent(rev["upgrade"]))
                out.append("  def downgrade():\n" + _indent(rev["downgrade"]))
        out.append("  schema after the step:\n" + _indent(store.dump(step["schema"])))
    if "invariants" in data:
        out.append("\n== invariants\n" + _indent(store.dump(data["invariants"])))
    return "".join(out)


def _declares(path: Path, scenario_id: str) -> bool:
    try:
        return load_scenario(path).id == scenario_id
    except ScenarioError:
        return path.stem == scenario_id


def format_outcome(outcome: Outcome) -> str:
    """The outcome as the pytest item reports it."""
    words = {FAIL: "FAILED", SKIP: "SKIPPED", XFAIL: "XFAIL"}
    if outcome.status not in words:
        return "outcome: passed (pytest agrees)\n"
    return f"outcome: {words[outcome.status]} (as pytest reports it)\n{outcome.message}\n"


def show(path: Path, stack_name: str, options: Options, as_yaml: bool = False) -> tuple[str, Outcome]:
    """Run the scenario as its test does; return (what to print, the outcome)."""
    scenario = load_scenario(path)
    with Session(options) as session:
        session.stack(stack_name)
        env = session.stack_env(stack_name)
        result = check_scenario(session, scenario, stack_name)
    header = f"# stack {stack_name}: " + ", ".join(
        f"{name} {env.versions[name]}"
        for name in ("alembic", "flask-migrate", "flask-sqlalchemy", "sqlalchemy")
        if name in env.versions
    )
    if result.observed is None:
        return f"{header}\n", result.outcome
    text = store.dump(result.observed) if as_yaml else format_observation(result.observed)
    return f"{header}\n{text}", result.outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.authoring", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    new = sub.add_parser("new", help="write a commented, valid scenario template")
    new.add_argument("path", type=Path, help="e.g. scenarios/columns/my_change.yaml")
    run = sub.add_parser(
        "show", help="run one scenario and print its migrations and schema, comparing nothing"
    )
    run.add_argument("path", type=Path)
    run.add_argument(
        "--stack", default=DEFAULT_STACK, help=f"a stack from stacks.toml (default {DEFAULT_STACK})"
    )
    add_arguments(run)
    run.add_argument(
        "--yaml", action="store_true", help="print the observation exactly as a snapshot holds it"
    )
    args = parser.parse_args(argv)
    if args.action == "new":
        try:
            written = scaffold(args.path)
        except (AuthoringError, ScenarioError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {written}\nnext: edit it, then `python -m harness.authoring show {written}`")
        return 0
    stop_on_sigterm()
    try:
        text, outcome = show(
            args.path, args.stack, Options.from_values(vars(args), default_runner="fork"), as_yaml=args.yaml
        )
    except (AuthoringError, ScenarioError, StackError, ServerError, ForkServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {args.path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(text, end="")
    print(format_outcome(outcome), end="", file=sys.stderr if outcome.failed else sys.stdout)
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
