"""Authoring scenarios: scaffold a new file, and see what a scenario does before snapshotting it.

``python -m harness.authoring new scenarios/columns/my_change.yaml`` writes a commented template
that is valid as written (it runs: an owners table, then a column added), so an author edits a
working scenario instead of starting from a blank page.

``python -m harness.authoring show scenarios/columns/my_change.yaml [--stack NAME]`` runs one
scenario exactly as the test does (real ``flask db`` from the stack's environment, a throwaway
PostgreSQL unless ``--pg-url``/``MIGRATE_HARNESS_PG_URL`` names one) and prints each step's
commands, the migration files autogenerate wrote and the schema afterwards, without comparing
anything: it is how an author learns what to expect before writing the snapshot. The server, the
database and the temporary project are removed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from harness import snapshot
from harness.commands import DEFAULT_TIMEOUT
from harness.observations import observe
from harness.runner import run_scenario
from harness.scenario import ScenarioError, load_scenario, parse_scenario
from harness.server import URL_ENV, Server, ServerError, ThrowawayServer, existing_server
from harness.stacks import StackError, ensure_env, load_stacks

DEFAULT_STACK = "current"

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
      # A command that should fail: `- upgrade:` with `expect: failure` on the next line.
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
                out.append("    rows:\n" + _indent(snapshot.dump(command["rows"]), "      "))
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
        out.append("  schema after the step:\n" + _indent(snapshot.dump(step["schema"])))
    if "invariants" in data:
        out.append("\n== invariants\n" + _indent(snapshot.dump(data["invariants"])))
    return "".join(out)


def _server(pg_url: str | None, pg_ctl: str | None) -> tuple[Server, ThrowawayServer | None]:
    if pg_url:
        return existing_server(pg_url), None
    throwaway = ThrowawayServer(pg_ctl)
    return throwaway.start(), throwaway


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def show(
    path: Path,
    stack_name: str = DEFAULT_STACK,
    pg_url: str | None = None,
    pg_ctl: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    as_yaml: bool = False,
) -> tuple[str, str | None]:
    """Run the scenario; return (what to print, the run's error or None)."""
    scenario = load_scenario(path)
    stacks = load_stacks()
    if stack_name not in stacks:
        raise AuthoringError(f"unknown stack {stack_name!r}; stacks.toml defines {', '.join(sorted(stacks))}")
    env = ensure_env(stacks[stack_name])
    server, throwaway = _server(pg_url, pg_ctl)
    try:
        run = run_scenario(scenario, env, server, timeout=timeout)
    finally:
        if throwaway is not None:
            throwaway.stop()
    data = observe(run)
    text = snapshot.dump(data) if as_yaml else format_observation(data)
    header = f"# stack {stack_name}: " + ", ".join(
        f"{name} {env.versions[name]}"
        for name in ("alembic", "flask-migrate", "flask-sqlalchemy", "sqlalchemy")
        if name in env.versions
    )
    return f"{header}\n{text}", run.error


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
    run.add_argument("--pg-url", default=os.environ.get(URL_ENV), help=f"a running server (env {URL_ENV})")
    run.add_argument("--pg-ctl", default=None, help="pg_ctl for the throwaway server")
    run.add_argument("--command-timeout", type=float, default=DEFAULT_TIMEOUT)
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
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate)
    try:
        text, error = show(
            args.path, args.stack, args.pg_url, args.pg_ctl, args.command_timeout, as_yaml=args.yaml
        )
    except (AuthoringError, ScenarioError, StackError, ServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {args.path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(text, end="")
    if error:
        print(f"\nthe run stopped early:\n{error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
