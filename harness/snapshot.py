"""Snapshots: expected observations stored beside each scenario, in YAML made for review.

Layout, per scenario file ``scenarios/x/foo.yaml`` with id ``foo``::

    scenarios/x/__snapshots__/foo.yaml            the common snapshot
    scenarios/x/__snapshots__/foo.<stack>.yaml    a stack's variant, only where it differs

A stack reads its variant if there is one, else the common file. ``--snapshot-update`` writes
the common file for the reference stack; for another stack it writes a variant only when the
observation differs from the common one, and removes a variant that has become redundant.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REFERENCE_STACK = "current"
SNAPSHOT_DIR = "__snapshots__"


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


def snapshot_paths(scenario_path: Path, scenario_id: str, stack: str) -> tuple[Path, Path]:
    """(common file, this stack's variant file)."""
    folder = scenario_path.parent / SNAPSHOT_DIR
    return folder / f"{scenario_id}.yaml", folder / f"{scenario_id}.{stack}.yaml"


@dataclass(frozen=True)
class Comparison:
    path: Path  # the file the observation was compared with (or would be written to)
    exists: bool
    diff: str  # unified diff, expected -> observed; empty when equal

    @property
    def matches(self) -> bool:
        return self.exists and not self.diff


def expected_file(scenario_path: Path, scenario_id: str, stack: str) -> Path:
    common, variant = snapshot_paths(scenario_path, scenario_id, stack)
    return variant if variant.exists() else common


def compare(observed: Any, scenario_path: Path, scenario_id: str, stack: str) -> Comparison:
    path = expected_file(scenario_path, scenario_id, stack)
    text = dump(observed)
    if not path.exists():
        return Comparison(path=path, exists=False, diff="")
    expected = path.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{path.name} (expected)",
            tofile="observed",
            n=3,
        )
    )
    return Comparison(path=path, exists=True, diff=diff)


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
