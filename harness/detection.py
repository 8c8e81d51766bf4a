"""The detection table: what autogenerate did with each scenario's model change, from the snapshots.

``docs/detection.md`` is generated, never written by hand: one row per scenario with the change
(the scenario's title), the operations autogenerate wrote for it, and a verdict computed from the
recorded observations by the rule below. Because the snapshots are the observations a run must
reproduce, the table can only change when a snapshot does; a test regenerates it and compares,
so it cannot go stale. Regenerate it with ``tox -e detection`` (``python -m harness.detection``).

The rule (documented for readers in the generated page and in docs/scenarios.md):

* The *change steps* of a scenario are its steps that run ``flask db migrate`` with models that
  differ from the previous step's. When a scenario migrates more than once, its first migrate
  step only sets up the starting point and is not a change step.
* **missed**: a change step produced no revision file, or one whose ``upgrade()`` has no operation.
* **partial**: every change step produced operations, but the result is not what the models say:
  an invariant fails (autogenerate is not clean afterwards, or downgrade + upgrade does not round
  trip); an ``upgrade``/``downgrade`` the scenario expects to fail failed; the database refused
  data the models allow (an ``sql`` step marked ``expect: failure``); or data was lost (a later
  ``query`` returns fewer rows than the scenario's first ``query``, or NULL where it had a value).
* **complete**: otherwise.

A *fix scenario* (one whose file says ``fixes: [ids]``) shows how a reader repairs another
scenario's pitfall; the **Fix** column links each pitfall to its fixes and each fix to what it
fixes. In a fix scenario, a command expected to fail is the fix at work (the database now refuses
what the models forbid), so it does not make the fix partial.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.scenario import Scenario, ScenarioError, load_scenario, scenario_files
from harness.store import REFERENCE_STACK, expected_file

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"
OUTPUT = ROOT / "docs" / "detection.md"
COMMAND = "tox -e detection"

COMPLETE, PARTIAL, MISSED = "complete", "partial", "missed"
# alter_column keywords that say what changes (the existing_* ones only describe the column)
_ALTERED = ("type_", "nullable", "server_default", "comment", "new_column_name")


class DetectionError(Exception):
    """A scenario whose observations cannot be read; the message names the file and the fix."""


@dataclass(frozen=True)
class Verdict:
    result: str  # COMPLETE, PARTIAL or MISSED
    reasons: tuple[str, ...]  # why it is not complete (empty when complete)


@dataclass(frozen=True)
class Row:
    path: str  # the scenario file, relative to the repository
    title: str
    produced: tuple[str, ...]  # one summary per change step
    verdict: Verdict
    id: str = ""
    fixes: tuple[str, ...] = ()  # ids of the scenarios this one fixes


def change_steps(scenario: Scenario) -> list[int]:
    """Indexes of the steps whose model change is under study (see the module docstring)."""
    migrating: list[int] = []
    changed: set[int] = set()
    models: str | None = None
    for index, step in enumerate(scenario.steps):
        if step.models is not None and step.models != models:
            changed.add(index)
            models = step.models
        if any(c.name == "migrate" for c in step.commands):
            migrating.append(index)
    candidates = migrating[1:] if len(migrating) > 1 else migrating
    return [i for i in candidates if i in changed]


def _ops(step: dict[str, Any]) -> list[dict[str, Any]]:
    revisions = (step.get("migration") or {}).get("revisions") or []
    return [op for rev in revisions for op in rev.get("upgrade_ops") or []]


def describe_op(op: dict[str, Any]) -> str:
    """`alter_column owners.email (nullable)`: what an operation touches, in a few words."""
    target = ".".join(str(op[k]) for k in ("table", "column") if op.get(k))
    text = f"{op['op']} {target}".strip()
    altered = [k.rstrip("_") for k in _ALTERED if k in (op.get("kwargs") or {})]
    if op["op"] == "alter_column" and altered:
        text += f" ({', '.join(altered)})"
    return text


def describe_step(step: dict[str, Any]) -> str:
    migration = step.get("migration") or {}
    if not migration.get("files"):
        return "no migration file"
    ops = _ops(step)
    return ", ".join(describe_op(op) for op in ops) if ops else "a migration file with no operation"


def _data_lost(observation: dict[str, Any]) -> str | None:
    """Compare the scenario's first `query` with each later one (see the module docstring)."""
    results = [c["rows"] for s in observation["steps"] for c in s["commands"] if "rows" in c]
    if len(results) < 2:
        return None
    first = results[0]
    for later in results[1:]:
        if len(later) < len(first):
            return f"rows lost: a query returned {len(later)} of {len(first)} rows"
        for before, after in zip(first, later, strict=False):
            emptied = [
                i
                for i, value in enumerate(before)
                if value is not None and (i >= len(after) or after[i] is None)
            ]
            if emptied:
                return f"values lost: {before[emptied[0]]!r} came back as NULL"
    return None


def classify(observation: dict[str, Any], changes: list[int], fix: bool = False) -> Verdict:
    """The verdict for one scenario's observations, given the indexes of its change steps."""
    steps = observation["steps"]
    missed = [
        f"step {i + 1} ({steps[i]['name']}): {describe_step(steps[i])}"
        for i in changes
        if i >= len(steps) or not _ops(steps[i])
    ]
    if missed:
        return Verdict(MISSED, tuple(missed))
    reasons = [
        f"{name} fails" for name, state in (observation.get("invariants") or {}).items() if state != "holds"
    ]
    for step in steps:
        for command in step["commands"]:
            if command.get("expect") != "failure" or fix:
                continue
            if command["command"].startswith("sql:"):
                reasons.append("the database refused data the models allow")
            else:
                reasons.append(f"`{command['command']}` fails")
    lost = _data_lost(observation)
    if lost:
        reasons.append(lost)
    return Verdict(PARTIAL if reasons else COMPLETE, tuple(dict.fromkeys(reasons)))


def build_row(path: Path, repo: Path = ROOT, stack: str = REFERENCE_STACK) -> Row:
    """One row, from the scenario file and its committed snapshot."""
    shown = path.relative_to(repo) if path.is_relative_to(repo) else path
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        raise DetectionError(str(exc)) from None
    snap = expected_file(path, scenario.id, stack)
    if not snap.exists():
        raise DetectionError(
            f"{shown}: no snapshot {snap.name} in {snap.parent.name}/; run `tox -e update -- {shown}`, "
            f"review the file it writes, then run `{COMMAND}` again."
        )
    observation = yaml.safe_load(snap.read_text(encoding="utf-8"))
    changes = change_steps(scenario)
    return Row(
        path=shown.as_posix(),
        title=scenario.title,
        produced=tuple(f"step {i + 1}: {describe_step(observation['steps'][i])}" for i in changes),
        verdict=classify(observation, changes, fix=bool(scenario.fixes)),
        id=scenario.id,
        fixes=scenario.fixes,
    )


def _link(row: Row) -> str:
    return f"[{_cell(row.path.removeprefix('scenarios/'))}](../{row.path})"


def fix_cell(row: Row, rows: list[Row]) -> str:
    """The fix scenarios of a pitfall, or what a fix scenario fixes."""
    by_id = {r.id: r for r in rows}
    if row.fixes:
        fixed = [_link(by_id[i]) if i in by_id else f"{i} (no such scenario)" for i in row.fixes]
        return "fixes " + ", ".join(fixed)
    return "<br>".join(_link(r) for r in rows if row.id in r.fixes)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


LEGEND = f"""\
# What Alembic autogenerate detects on PostgreSQL

Generated by `{COMMAND}` (`python -m harness.detection`) from the committed snapshots of the
`{{stack}}` stack; do not edit by hand. A test fails when this page and the snapshots disagree.
How to add a scenario: [scenarios.md](scenarios.md).

**How the result is computed.** The *change steps* of a scenario are its steps that run
`flask db migrate` with models that differ from the previous step's; when a scenario migrates
more than once, its first migrate step only sets up the starting point.

- **missed**: a change step produced no migration file (or one with no operation). A change
  that lives only in Python (a `default=`) counts as missed too: autogenerate cannot see it.
- **partial**: operations were produced, but an invariant fails (autogenerate is not clean after
  the last upgrade, or `downgrade base` + `upgrade` does not round trip), an `upgrade` the
  scenario expects to fail fails, the database refuses data the models allow (an `sql` step
  marked `expect: failure`), or data is lost (a later `query` returns fewer rows than the first
  `query`, or NULL where it had a value).
- **complete**: otherwise.

**Fix** links a pitfall to the scenario that shows how a reader repairs it (the migration adjusted
before `upgrade`, a name given, a revision written by hand), with `query` proving the data kept.
In a fix scenario a command expected to fail is the fix at work, not a partial result.
"""


def render(rows: list[Row], stack: str = REFERENCE_STACK) -> str:
    counts = Counter(r.verdict.result for r in rows)
    lines = [
        LEGEND.format(stack=stack),
        f"{len(rows)} scenarios: {counts[COMPLETE]} complete, {counts[PARTIAL]} partial, "
        f"{counts[MISSED]} missed.",
        "",
        "| Scenario | Change | Autogenerate produced | Result | Why | Fix |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = row.path.removeprefix("scenarios/")
        lines.append(
            f"| [{_cell(name)}](../{row.path}) | {_cell(row.title)} | "
            f"{'<br>'.join(_cell(p) for p in row.produced) or '(no change step)'} | "
            f"**{row.verdict.result}** | {'<br>'.join(_cell(r) for r in row.verdict.reasons)} | "
            f"{fix_cell(row, rows)} |"
        )
    return "\n".join(lines) + "\n"


def generate(root: Path = SCENARIOS, repo: Path = ROOT, stack: str = REFERENCE_STACK) -> str:
    return render([build_row(p, repo, stack) for p in scenario_files(root)], stack)


def page_command(
    argv: list[str] | None, prog: str, output: Path, generate_page: Callable[[], str], command: str
) -> int:
    """The command line shared by the generated pages: write the page, or with --check only
    say whether the committed one is up to date."""
    parser = argparse.ArgumentParser(prog=prog, description=f"regenerate {output.relative_to(ROOT)}")
    parser.add_argument("--output", type=Path, default=output, help=f"default: {output.relative_to(ROOT)}")
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date")
    args = parser.parse_args(argv)
    try:
        text = generate_page()
    except DetectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is out of date; run `{command}` and commit it.", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date.")
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(f"{args.output} is already up to date.")
    return 0


def main(argv: list[str] | None = None) -> int:
    return page_command(argv, "python -m harness.detection", OUTPUT, generate, COMMAND)


if __name__ == "__main__":
    sys.exit(main())
