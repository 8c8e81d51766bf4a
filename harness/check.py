"""One scenario on one stack, from file to outcome: run it, observe it, compare or write its
snapshot, judge it. The pytest item and ``show`` both call `check_scenario`, so they agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import judge, store
from harness.judge import Outcome
from harness.observe.normalise import observe
from harness.records import ScenarioRun
from harness.scenario import Scenario
from harness.session import Session


@dataclass(frozen=True)
class ScenarioCheck:
    outcome: Outcome
    run: ScenarioRun | None = None  # None when the scenario was skipped before running
    observed: dict[str, Any] | None = None
    written: Path | None = None  # the snapshot file --snapshot-update wrote or removed


def check_scenario(session: Session, scenario: Scenario, stack: str, update: bool = False) -> ScenarioCheck:
    """Run `scenario` on `stack` through `session`; with `update`, write its snapshot instead of
    comparing. Raises the session's StackError, ServerError or ForkServerError when the stack or
    the server cannot be had at all."""
    env = session.stack_env(stack)
    skipped = judge.before_run(scenario, stack, env.versions)
    if skipped is not None:
        return ScenarioCheck(outcome=skipped)
    run = session.run_scenario(scenario, stack)
    observed = observe(run)
    comparison, written = None, None
    try:
        if run.error is None and update:
            written = store.update(observed, scenario.path, scenario.id, stack)
        elif run.error is None:
            comparison = store.compare(observed, scenario.path, scenario.id, stack)
    except store.SnapshotError as exc:
        return ScenarioCheck(outcome=Outcome(judge.FAIL, (str(exc),)), run=run, observed=observed)
    outcome = judge.judge_scenario(run, stack, observed, comparison)
    return ScenarioCheck(outcome=outcome, run=run, observed=observed, written=written)
