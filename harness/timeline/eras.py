"""The era stacks of stacks.toml beside the date stack of their time.

An era stack pins a point in time by hand (with pins that make it run today); the date stack is
what the article's bare line resolved to on a day of that time. The comparison shows which pins
the hand-made stack holds that a reader of the time did not get, and which claims' verdicts differ.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from harness.stacks import DEFAULT_STACKS_FILE, load_stacks
from harness.timeline import datestacks
from harness.timeline.datestacks import Pins

VERDICTS = Path(__file__).resolve().parents[2] / "claims" / "verdicts"


def era_day(name: str, end: date) -> date:
    """The day an era stack stands for: the middle of the year its name gives; today otherwise."""
    found = re.search(r"(20\d\d)", name)
    return date(int(found.group(1)), 7, 1) if found else end


def compare_eras(
    line: tuple[str, ...],
    end: date,
    verdict_on: Callable[[date], dict[str, str]],
    stacks_file: Path = DEFAULT_STACKS_FILE,
    verdicts: Path = VERDICTS,
) -> dict[str, Any]:
    """Per era stack: the day, the pins that differ (era, date), the claims whose verdict differs."""
    out = {}
    for name, stack in load_stacks(stacks_file).items():
        day = era_day(name, end)
        era_pins: Pins | None = datestacks.compile_today(stack.requirements)
        date_pins = datestacks.resolve(line, day).pins
        a, b = dict(era_pins or ()), dict(date_pins or ())
        differ = {n: [a.get(n), b.get(n)] for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)}
        file = verdicts / f"{name}.yaml"
        records = yaml.safe_load(file.read_text(encoding="utf-8")) if file.exists() else {}
        # a claim record is the verdict with its evidence; the page compares the verdicts
        era_verdicts = {c: r["verdict"] if isinstance(r, dict) else r for c, r in (records or {}).items()}
        theirs = verdict_on(day)
        verdicts_differ = {
            c: [era_verdicts.get(c), theirs.get(c)]
            for c in sorted(set(era_verdicts) | set(theirs))
            if era_verdicts.get(c) != theirs.get(c)
        }
        out[name] = {"day": day.isoformat(), "differ": differ, "verdicts_differ": verdicts_differ}
    return out
