"""The one snapshot store: scenario snapshots and claim records, in YAML made for review.

Two layouts, one format (`dump`), one comparison (a unified diff) and one rule for what is
unused:

- **Scenario snapshots**, one file per scenario (``scenarios/x/foo.yaml``, id ``foo``)::

      scenarios/x/__snapshots__/foo.yaml            the common snapshot
      scenarios/x/__snapshots__/foo.<stack>.yaml    a stack's variant, only where it differs

  A stack reads its variant if there is one, else the common file. Updating writes the common
  file for the reference stack; for another stack it writes a variant only when the observation
  differs from the common one, and removes a variant that has become redundant.

- **Claim records**, one file per stack (``claims/verdicts/<stack>.yaml``), one entry per
  claim: its verdict and its normalised evidence. xdist workers share such a file, so its
  read-modify-write holds a lock on the folder (a lock file would itself need cleaning up).

- **Claims transcripts**, one file per stack (``claims/transcripts/<stack>.yaml``): every
  command the probe ran, as a reader sees it. A file of its own, not an entry among the
  records: it belongs to the stack's probe, not to any one claim, it reads top to bottom like a
  terminal session (cram's discipline), and a changed line shows as one diff in one place.

A snapshot that belongs to no scenario, claim or stack is unused: the run fails naming it, and
``--snapshot-update`` deletes it (syrupy's rule). Nothing here decides pass or fail; `judge` does.
"""

from __future__ import annotations

import difflib
import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.scenario import SNAPSHOT_DIR, scenario_ids_in

REFERENCE_STACK = "current"
RECORDS_DIR = "verdicts"
TRANSCRIPTS_DIR = "transcripts"


class SnapshotError(Exception):
    """A snapshot file that cannot be read; the message names it and says what to do."""


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so migration bodies read as code in a diff."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False
    )


def read(path: Path) -> Any:
    """A snapshot file's data (None when it does not exist)."""
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise SnapshotError(
            f"{where}: the snapshot is not valid YAML ({getattr(exc, 'problem', None) or exc}).\n"
            "What to do: restore it from git (`git checkout -- FILE`) or delete it and run with "
            "--snapshot-update, then review what is written."
        ) from None


def _diff(expected: str, observed: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            observed.splitlines(keepends=True),
            fromfile=f"{name} (expected)",
            tofile="observed",
            n=3,
        )
    )


@dataclass(frozen=True)
class Comparison:
    path: Path  # the file the observation was compared with (or would be written to)
    exists: bool
    diff: str  # unified diff, expected -> observed; empty when equal
    expected: Any = None  # the stored data, parsed

    @property
    def matches(self) -> bool:
        return self.exists and not self.diff


# -- scenario snapshots ------------------------------------------------------------------------


def snapshot_paths(scenario_path: Path, scenario_id: str, stack: str) -> tuple[Path, Path]:
    """(common file, this stack's variant file)."""
    folder = scenario_path.parent / SNAPSHOT_DIR
    return folder / f"{scenario_id}.yaml", folder / f"{scenario_id}.{stack}.yaml"


def expected_file(scenario_path: Path, scenario_id: str, stack: str) -> Path:
    common, variant = snapshot_paths(scenario_path, scenario_id, stack)
    return variant if variant.exists() else common


def compare(observed: Any, scenario_path: Path, scenario_id: str, stack: str) -> Comparison:
    path = expected_file(scenario_path, scenario_id, stack)
    if not path.exists():
        return Comparison(path=path, exists=False, diff="")
    expected = read(path)
    text = path.read_text(encoding="utf-8")
    return Comparison(path=path, exists=True, diff=_diff(text, dump(observed), path.name), expected=expected)


def update(observed: Any, scenario_path: Path, scenario_id: str, stack: str) -> Path | None:
    """Write the snapshot for `stack`; return the file written, or None if nothing changed."""
    common, variant = snapshot_paths(scenario_path, scenario_id, stack)
    text = dump(observed)
    common.parent.mkdir(exist_ok=True)
    if stack == REFERENCE_STACK or not common.exists():
        target = common
    elif common.read_text(encoding="utf-8") == text:
        if variant.exists():
            variant.unlink()
            return variant
        return None
    else:
        target = variant
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return None
    target.write_text(text, encoding="utf-8")
    return target


def snapshot_owner(path: Path) -> str:
    """The scenario id a snapshot file belongs to (`foo.yaml`, `foo.era2020.yaml` -> `foo`)."""
    return path.name.split(".", 1)[0]


def unused_snapshots(roots: Iterable[Path], stacks: set[str]) -> list[Path]:
    """Snapshot files under `roots` that belong to no scenario (or to a stack no longer defined)."""
    unused = []
    for root in roots:
        for folder in sorted(root.rglob(SNAPSHOT_DIR)):
            ids = scenario_ids_in(folder.parent)
            for snap in sorted(folder.glob("*.yaml")):
                parts = snap.name.split(".")
                stack_ok = len(parts) == 2 or (len(parts) == 3 and parts[1] in stacks)
                if parts[0] not in ids or not stack_ok:
                    unused.append(snap)
    return sorted(set(unused))


# -- claim records -----------------------------------------------------------------------------


def records_file(catalogue: Path, stack: str) -> Path:
    return catalogue.parent / RECORDS_DIR / f"{stack}.yaml"


def read_records(path: Path) -> dict[str, Any]:
    data = read(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SnapshotError(
            f"{path}: a claim record file must map claim ids to their records, not a {type(data).__name__}.\n"
            "What to do: restore it from git, or delete it and run with --snapshot-update."
        )
    return data


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def compare_record(observed: Any, path: Path, key: str) -> Comparison:
    records = read_records(path)
    if key not in records:
        return Comparison(path=path, exists=False, diff="")
    expected = records[key]
    diff = _diff(dump({key: expected}), dump({key: observed}), f"{path.name}: {key}")
    return Comparison(path=path, exists=True, diff=diff, expected=expected)


def write_record(observed: Any, path: Path, key: str) -> bool:
    """Store one claim's record; True when the file changed."""
    with _locked(path.parent):
        records = read_records(path)
        if key in records and records[key] == observed:
            return False
        records[key] = observed
        path.write_text(dump(dict(sorted(records.items()))), encoding="utf-8")
        return True


def transcript_file(catalogue: Path, stack: str) -> Path:
    return catalogue.parent / TRANSCRIPTS_DIR / f"{stack}.yaml"


def compare_file(observed: Any, path: Path) -> Comparison:
    """A whole-file snapshot (a stack's claims transcript) against `observed`."""
    if not path.exists():
        return Comparison(path=path, exists=False, diff="")
    expected = read(path)
    return Comparison(
        path=path,
        exists=True,
        diff=_diff(path.read_text(encoding="utf-8"), dump(observed), path.name),
        expected=expected,
    )


def write_file(observed: Any, path: Path) -> bool:
    """Write a whole-file snapshot; True when the file changed."""
    text = dump(observed)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def unused_records(catalogue: Path, claim_ids: set[str], stacks: set[str]) -> list[tuple[Path, str | None]]:
    """Record and transcript files of stacks no longer defined (key None), and record entries
    of claims not in the catalogue."""
    transcripts = catalogue.parent / TRANSCRIPTS_DIR
    unused: list[tuple[Path, str | None]] = [
        (path, None) for path in sorted(transcripts.glob("*.yaml")) if path.stem not in stacks
    ]
    folder = catalogue.parent / RECORDS_DIR
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        if path.stem not in stacks:
            unused.append((path, None))
            continue
        unused += [(path, key) for key in sorted(read_records(path)) if key not in claim_ids]
    return unused


def delete_record(path: Path, key: str | None) -> None:
    """Remove a whole record file (key None) or one entry of it."""
    with _locked(path.parent):
        if key is None:
            path.unlink(missing_ok=True)
            return
        records = read_records(path)
        if records.pop(key, None) is not None:
            path.write_text(dump(dict(sorted(records.items()))), encoding="utf-8")
