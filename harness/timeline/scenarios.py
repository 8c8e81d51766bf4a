"""`--scenarios`: the scenario library on the timeline's days.

The article scenario and each library scenario run on the date stacks of the days the claims'
search visited, and get the detection verdict (complete / partial / missed, the rule of
`harness.detection`) from what they observed. A scenario costs seconds per stack, so this covers
the distinct resolutions of the grid days and of the change days (not the culprit swap runs); a
time budget may cut it short, and the result says what was covered.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness import judge
from harness.detection import SCENARIOS, change_steps, classify
from harness.observe.normalise import observe
from harness.scenario import ScenarioError, load_scenario, scenario_files
from harness.session import Session
from harness.stacks import StackError
from harness.timeline import datestacks, search
from harness.timeline.datestacks import pins_key


def scenario_verdict(session: Session, path: Path, stack: str) -> str:
    """One scenario's detection verdict on one stack, or why there is none."""
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        return f"error: {str(exc).splitlines()[0]}"
    env = session.stack_env(stack)
    skipped = judge.before_run(scenario, stack, env.versions)
    if skipped is not None:
        return "skipped"
    run = session.run_scenario(scenario, stack)
    if run.error is not None:
        return "error: " + run.error.splitlines()[0][:120]
    return classify(observe(run), change_steps(scenario)).result


def visited_days(timeline: search.Timeline, step_days: int) -> list[Any]:
    """The grid days and the first day of every change of resolution the bisection pinned down."""
    grid = set(search.grid(timeline.start, timeline.end, step_days))
    days = sorted(timeline.days)
    out, seen = [], set()
    for i, day in enumerate(days):
        pins = timeline.days[day]
        changed = i == 0 or (day - days[i - 1]).days == 1 and pins != timeline.days[days[i - 1]]
        if (day in grid or changed) and pins is not None and pins not in seen:
            seen.add(pins)
            out.append(day)
    return out


def scenario_timeline(
    session: Session,
    timeline: search.Timeline,
    line: tuple[str, ...],
    step_days: int,
    budget: float = 1800.0,
    root: Path = SCENARIOS,
) -> dict[str, Any]:
    root = root.resolve()
    files = scenario_files(root)
    days = visited_days(timeline, step_days)
    started = time.perf_counter()
    out: dict[str, dict[str, str]] = {}
    for day in days:
        if time.perf_counter() - started > budget:
            break
        pins = timeline.days[day]
        assert pins is not None
        name = f"date-{pins_key(pins)}"
        try:
            env = datestacks.build_env(name, line, pins)
        except StackError as exc:
            out[day.isoformat()] = {"(all)": "not installable: " + str(exc).splitlines()[0][:80]}
            continue
        session.adopt_env(env)
        out[day.isoformat()] = {
            p.relative_to(SCENARIOS).with_suffix("").as_posix()
            if p.is_relative_to(SCENARIOS)
            else p.stem: scenario_verdict(session, p, name)
            for p in files
        }
    covered = (
        f"Covered {len(out)} of the {len(days)} distinct resolutions of the grid and change days "
        f"({', '.join(out) or 'none'}); {len(files)} scenario(s) each, from {root.name}/."
    )
    return {"covered": covered, "days": out}
