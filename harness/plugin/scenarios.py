"""Scenario files as pytest tests: one item per scenario per stack; outcomes come from `check`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.check import ScenarioCheck, check_scenario
from harness.plugin.common import failure_text, scenario_stacks, session_of, translate
from harness.runners import ForkServerError
from harness.scenario import Scenario, ScenarioError, load_scenario
from harness.server import ServerError
from harness.stacks import StackError

_IDS = pytest.StashKey[dict[str, Path]]()


class ScenarioWarning(UserWarning):
    """Something a passing scenario deserves a word about (a query result cut to the size limit)."""


class ScenarioFailed(Exception):
    """A scenario whose run or snapshot did not come out as expected; the text says why."""


class ScenarioFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        try:
            scenario = load_scenario(Path(os.path.relpath(self.path, self.config.rootpath)))
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        seen = self.config.stash.setdefault(_IDS, {})
        other = seen.setdefault(scenario.id, scenario.path)
        if other != scenario.path:
            raise self.CollectError(
                f"{scenario.path}: scenario id {scenario.id!r} is already used by {other}.\n"
                "What to do: give one of them another id (ids name the snapshot files, so they must be "
                "unique)."
            )
        return [
            ScenarioItem.from_parent(self, name=f"{scenario.id}[{stack}]", scenario=scenario, stack=stack)
            for stack in scenario_stacks(self.config)
        ]


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, stack: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.stack = stack
        self.result: ScenarioCheck | None = None

    def runtest(self) -> None:
        session = session_of(self.config)
        try:
            self.result = check_scenario(
                session, self.scenario, self.stack, update=self.config.getoption("snapshot_update")
            )
        except (StackError, ServerError, ForkServerError) as exc:
            raise ScenarioFailed(f"{self.scenario.path}: cannot run on stack {self.stack!r}: {exc}") from None
        outcome = self.result.outcome
        if self.result.written:
            self.user_properties.append(("snapshot_written", str(self.result.written)))
        # warnings: e.g. a query result cut to the snapshot's size limit
        translate(outcome, ScenarioFailed, ScenarioWarning)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return f"scenario {self.scenario.id!r} on stack {self.stack!r}:\n{excinfo.value}"
        prefix = f"{self.scenario.path}: stack {self.stack!r}"
        return failure_text(prefix, excinfo, super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.scenario.id} [{self.stack}]"
