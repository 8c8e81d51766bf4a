"""The record of one scenario run: what each step and command did, and how the invariants came out.

Plain data, written by `execute` and read by `observe`, `judge` and the reports. A record never
says whether a scenario passed; `judge` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.observe.migration import Revision
from harness.runners.base import CommandResult
from harness.scenario import Command, Scenario, Step
from harness.stacks import StackEnv


@dataclass
class CommandRecord:
    command: Command
    result: CommandResult | None = None  # None for the harness's own SQL
    rows: list[list[Any]] | None = None  # for `query`
    sql_error: str | None = None
    rows_total: int | None = None  # for `query`: how many rows there were when `rows` holds only some
    edit: dict[str, str] | None = None  # for `edit`: the file, the change as a diff, the file after it


@dataclass
class StepRecord:
    step: Step
    commands: list[CommandRecord] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    detected: list[str] = field(default_factory=list)
    schema: dict[str, Any] | None = None


@dataclass
class InvariantResult:
    name: str
    ok: bool
    detail: str = ""
    known: str | None = None  # the scenario's reason when it declares this failure as known


@dataclass
class ScenarioRun:
    scenario: Scenario
    stack: StackEnv
    steps: list[StepRecord] = field(default_factory=list)
    invariants: list[InvariantResult] = field(default_factory=list)
    error: str | None = None  # the first unexpected failure of a step, ready to show to the author
    replacements: dict[str, str] = field(default_factory=dict)  # volatile text -> placeholder

    @property
    def revision_ids(self) -> list[str]:
        return [r.revision for s in self.steps for r in s.revisions]
