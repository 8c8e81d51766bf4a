"""What `execute` does for the commands the scenario language added: references resolved, the edit
command applied to a project file, and its record.

Kept out of ``execute.py`` so that the executor stays one loop over the steps; each function here
is called from one small hook there and returns plain values or a sentence for the failure.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from harness.commands_spec import normalise_output, resolve
from harness.edit import EditError, apply_edit
from harness.project import Project
from harness.records import ScenarioRun
from harness.scenario import Command


def resolver(run: ScenarioRun) -> Callable[[str], str]:
    """`<revN>` / `<rev:message>` -> the id of a revision this run created (commands_spec.resolve)."""
    revisions = [(r.revision, r.message) for s in run.steps for r in s.revisions]
    return lambda text: resolve(text, revisions)


def _target(
    project: Project, command: Command, resolve_text: Callable[[str], str], latest: str | None
) -> Path:
    edit = command.edit
    assert edit is not None
    if edit.file:
        path = (project.root / edit.file).resolve()
        if not path.is_relative_to(project.root.resolve()) or not path.is_file():
            raise EditError(f"{edit.file} is not a file of the project")
        return path
    if edit.revision:
        rev, named = resolve_text(edit.revision), edit.revision
    elif latest:
        rev, named = latest, "the latest revision"
    else:
        raise EditError("the run has created no revision file yet; run `migrate` or `revision` first")
    found = [p for p in project.revision_files() if _revision_of(p) == rev]
    if not found:
        raise EditError(f"no revision file with id {rev} ({named})")
    return found[0]


def _revision_of(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("revision ="):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


def run_edit(project: Project, command: Command, run: ScenarioRun) -> tuple[dict[str, str] | None, str]:
    """Apply the edit; return its record (file, diff, the file after) or None and the reason."""
    resolve_text = resolver(run)
    try:
        ids = [r.revision for s in run.steps for r in s.revisions]
        path = _target(project, command, resolve_text, ids[-1] if ids else None)
        before = path.read_text(encoding="utf-8")
        after = apply_edit(command.edit, before, resolve_text)  # type: ignore[arg-type]
    except (EditError, ValueError) as exc:
        return None, str(exc)
    path.write_text(after, encoding="utf-8")
    name = path.relative_to(project.root).as_posix()
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}", n=1
        )
    )
    record = {"file": name, "diff": normalise_output(diff)}
    if path.parent == project.versions_dir:
        record["after"] = normalise_output(after)
    return record, ""
