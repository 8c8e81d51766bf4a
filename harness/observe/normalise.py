"""From a `ScenarioRun` to the plain, normalised data a snapshot stores.

Normalised means: revision ids become ``<rev1>``, ``<rev2>``… in order of creation; the
temporary project, the stack's environment, the database name and URL become placeholders;
``Create Date`` lines never appear (only function bodies are kept). Two runs of the same
scenario on the same stack therefore give byte-identical observations.
"""

from __future__ import annotations

import re
from typing import Any

from harness.observe.commands import command_fields
from harness.records import CommandRecord, ScenarioRun, StepRecord
from harness.runners.base import error_line


def _command(record: CommandRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"command": record.command.label}
    if record.result is not None:
        out["exit"] = record.result.exit_code
        if not record.result.ok:
            out["error"] = error_line(record.result.output)
    elif record.sql_error is not None:
        out["error"] = record.sql_error.splitlines()[0]
    if record.command.expect_failure or record.command.expect_any:
        out["expect"] = "failure" if record.command.expect_failure else "any"
    if record.rows is not None:
        out["rows"] = record.rows
    out.update(command_fields(record))
    return out


def _step(record: StepRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"name": record.step.name, "commands": [_command(c) for c in record.commands]}
    if record.revisions or any(c.command.name == "migrate" for c in record.commands):
        out["migration"] = {
            "files": len(record.revisions),
            "detected": list(record.detected),
            "revisions": [
                {
                    "revision": rev.revision,
                    "down_revision": rev.down_revision,
                    "message": rev.message,
                    "upgrade": rev.upgrade,
                    "downgrade": rev.downgrade,
                    "upgrade_ops": [op.as_dict() for op in rev.upgrade_ops],
                    "downgrade_ops": [op.as_dict() for op in rev.downgrade_ops],
                }
                for rev in record.revisions
            ],
        }
    out["schema"] = record.schema
    return out


def _normalise(value: Any, subs: list[tuple[re.Pattern[str] | str, str]]) -> Any:
    if isinstance(value, str):
        for old, new in subs:
            value = old.sub(new, value) if isinstance(old, re.Pattern) else value.replace(old, new)
        return value
    if isinstance(value, list | tuple):
        return [_normalise(v, subs) for v in value]
    if isinstance(value, dict):
        return {_normalise(k, subs): _normalise(v, subs) for k, v in value.items()}
    return value


def observe(run: ScenarioRun) -> dict[str, Any]:
    """The snapshot data of one run (without the stack's versions: those go in reports)."""
    data: dict[str, Any] = {
        "scenario": run.scenario.id,
        "title": run.scenario.title,
        "steps": [_step(s) for s in run.steps],
    }
    if run.invariants:
        data["invariants"] = {
            inv.name: "holds"
            if inv.ok
            else (f"fails (known: {inv.known}): " if inv.known else "fails: ") + inv.detail
            for inv in run.invariants
        }
    subs: list[tuple[re.Pattern[str] | str, str]] = sorted(
        run.replacements.items(), key=lambda kv: -len(kv[0])
    )
    for index, rev in enumerate(dict.fromkeys(run.revision_ids), start=1):
        subs.append((rev, f"<rev{index}>"))
    # any revision id left (e.g. one Alembic printed for a file that was later removed)
    subs.append((re.compile(r"\b[0-9a-f]{12}\b"), "<rev?>"))
    # object addresses in error messages ("<... object at 0x7f82ba738a40>") differ on every run
    subs.append((re.compile(r"\b0x[0-9a-f]{6,}\b"), "0x<address>"))
    return _normalise(data, subs)
