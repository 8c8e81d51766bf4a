"""The timeline's search, as pure functions of a resolver and an evaluator.

A reader's result on day D depends only on the resolution of D (the pins), and the resolution
only changes when a release is uploaded. So:

- `bisect_timeline` samples a grid of days, and between two neighbouring samples whose results
  differ bisects over the days until the change is pinned to one day (a day whose resolution
  equals a known one costs a resolve, never an evaluation). Two neighbours with equal results are
  taken to be equal throughout: a change that reverts before the next sample is not seen; the
  grid step bounds that blind spot and every report states it.
- `find_culprit` takes the last good and the first changed resolution and tries each differing
  pin alone (the last good pins with that one package upgraded, added or removed); the packages
  whose upgrade alone reproduces the new result are the culprits. When none does alone, pairs are
  tried (delta debugging over the differing pins); when no pair does either, it says so.

The bisection splits a gap at an upload day when it knows them (`uploads`): a day's resolution
can only differ from the day before's if a release of one of its packages was uploaded that day,
so halving the upload days inside a gap (a few dozen a year) takes fewer probes than halving its
days (365 a year). The upload days only guide the split: a gap with none inside is halved by days,
so a missing upload day costs probes, never a wrong day.

Resolution and evaluation are injected; `evaluate` is expected to cache by pins.
"""

from __future__ import annotations

import contextlib
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import combinations

Pins = tuple[tuple[str, str], ...]
Results = dict[str, str]  # claim id -> result
Resolver = Callable[[date], "Pins | None"]  # None: the line does not resolve that day
Evaluator = Callable[["Pins | None"], Results]
Prefetch = Callable[[list["Pins | None"]], None]  # evaluate several at once (in parallel); optional
Uploads = Callable[[str], list[date]]  # a package -> the days (UTC) any file of any release was uploaded


def _no_prefetch(pins: list[Pins | None]) -> None:
    return None


class Unavailable(Exception):
    """The evaluator will not evaluate this resolution now (its time budget is spent)."""


MAX_PAIR_PINS = 8  # pairs are tried only among this many differing pins (28 runs at most)


@dataclass(frozen=True)
class Change:
    """The first day `day` whose result for `claim` differs from the day before (`before`)."""

    claim: str
    before: date
    day: date
    old: str
    new: str


@dataclass
class Timeline:
    start: date
    end: date
    step_days: int
    days: dict[date, Pins | None] = field(default_factory=dict)  # every day resolved
    evaluated: list[Pins | None] = field(default_factory=list)  # every resolution evaluated, in order
    unrefined: list[tuple[date, date]] = field(default_factory=list)  # gaps left (evaluator unavailable)
    with_results: set[date] = field(default_factory=set)  # set after the search: the days with results

    def windows(self, claim: str, results: Callable[[date], Results]) -> list[tuple[date, date, str]]:
        """(from, to, result) runs over the resolved days; `to` is the day before the next window."""
        out: list[tuple[date, date, str]] = []
        for day in sorted(self.days):
            result = results(day)[claim]
            if out and out[-1][2] == result:
                out[-1] = (out[-1][0], day, result)
            else:
                if out:
                    out[-1] = (out[-1][0], day - timedelta(days=1), out[-1][2])
                out.append((day, day, result))
        if out:
            out[-1] = (out[-1][0], self.end, out[-1][2])
        return out


def grid(start: date, end: date, step_days: int) -> list[date]:
    days = []
    day = start
    while day < end:
        days.append(day)
        day += timedelta(days=step_days)
    days.append(end)
    return days


def split(lo: date, hi: date, candidates: list[date]) -> date:
    """The day to probe inside the gap (lo, hi), hi - lo > 1 day: the middle of the upload days in
    (lo, hi] (`candidates`: the days the resolution may change on), else the middle day.

    With one upload day c left, the day before it (which resolves like `lo`, so costs no probe),
    or c itself when that is `lo`; the result is always strictly between lo and hi.
    """
    inside = sorted(c for c in set(candidates) if lo < c <= hi)
    if len(inside) >= 2:
        return inside[(len(inside) - 1) // 2]  # < hi
    if len(inside) == 1:
        c = inside[0]
        if c - timedelta(days=1) > lo:
            return c - timedelta(days=1)
        if c < hi:
            return c
    return lo + timedelta(days=(hi - lo).days // 2)


def bisect_timeline(
    start: date,
    end: date,
    step_days: int,
    resolve: Resolver,
    evaluate: Evaluator,
    known: dict[date, Pins | None] | None = None,
    prefetch: Prefetch = _no_prefetch,
    width: int = 1,
    uploads: Uploads | None = None,
) -> Timeline:
    """Resolve a grid of days and bisect every gap whose ends differ, down to one day.

    `known` holds days resolved by an earlier run (the incremental record): they are reused, and a
    day after the last known one extends the timeline from there.
    """
    timeline = Timeline(start, end, step_days, days=dict(known or {}))
    seen: set[Pins | None] = set()

    def pins(day: date) -> Pins | None:
        if day not in timeline.days:
            timeline.days[day] = resolve(day)
        return timeline.days[day]

    def results(day: date) -> Results:
        p = pins(day)
        if p not in seen:
            seen.add(p)
            timeline.evaluated.append(p)
        return evaluate(p)

    def candidates(lo: date, hi: date) -> list[date]:
        if uploads is None:
            return []
        names = {n for n, _ in pins(lo) or ()} | {n for n, _ in pins(hi) or ()}
        return [d for name in sorted(names) for d in uploads(name) if lo < d <= hi]

    points = sorted(set(grid(start, end, step_days)) | {d for d in timeline.days if start <= d <= end})
    # breadth first: every grid day first, then each gap halved in turn, so that a run cut short by
    # a budget covers the whole span coarsely rather than one year finely
    queue = deque(
        (lo, hi) for lo, hi in zip(points, points[1:], strict=False) if pins(lo) != pins(hi)
    )  # same resolution at both ends: nothing between can differ (uploads only add)
    # level by level: the days of one level are evaluated together (`prefetch`, in parallel)
    prefetch([pins(day) for day in points])
    for day in points:
        with contextlib.suppress(Unavailable):
            results(day)
    # the gap whose ends differ in the most claims first (the changes that matter most are pinned
    # to their day and their culprit before a budget runs out), `width` gaps at a time
    heap: list[tuple[int, date, date]] = []

    def push(lo: date, hi: date) -> None:
        try:
            old, new = results(lo), results(hi)
        except Unavailable:
            timeline.unrefined.append((lo, hi))
            return
        differ = sum(old.get(k) != new.get(k) for k in set(old) | set(new))
        if differ and (hi - lo).days > 1:
            heapq.heappush(heap, (-differ, lo, hi))

    for lo, hi in queue:
        push(lo, hi)
    while heap:
        batch = [heapq.heappop(heap) for _ in range(min(width, len(heap)))]
        mids = [(lo, split(lo, hi, candidates(lo, hi)), hi) for _, lo, hi in batch]
        prefetch([pins(mid) for _, mid, _ in mids])
        for lo, mid, hi in mids:
            try:
                results(mid)
            except Unavailable:
                timeline.unrefined.append((lo, hi))
                continue
            push(lo, mid)
            push(mid, hi)
    return timeline


def evaluated_days(timeline: Timeline, evaluate: Evaluator) -> list[date]:
    """The resolved days whose resolution has results (all of them unless a budget cut the run short)."""
    out = []
    for day in sorted(timeline.days):
        try:
            evaluate(timeline.days[day])
        except Unavailable:
            continue
        out.append(day)
    return out


def changes(timeline: Timeline, results: Callable[[date], Results], claims: list[str]) -> list[Change]:
    out = []
    days = (
        [d for d in sorted(timeline.days) if d in timeline.with_results]
        if timeline.with_results
        else sorted(timeline.days)
    )
    for before, day in zip(days, days[1:], strict=False):
        old, new = results(before), results(day)
        for claim in claims:
            if old[claim] != new[claim] and (day - before).days == 1:
                out.append(Change(claim, before, day, old[claim], new[claim]))
    return out


def differing(old: Pins, new: Pins) -> list[str]:
    a, b = dict(old), dict(new)
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


def swap(old: Pins, new: Pins, names: tuple[str, ...]) -> Pins:
    """`old` with the named packages as `new` has them (upgraded, added, or removed)."""
    out, b = dict(old), dict(new)
    for name in names:
        if name in b:
            out[name] = b[name]
        else:
            out.pop(name, None)
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class Culprit:
    claim: str
    packages: tuple[str, ...]  # empty: no single package nor pair reproduces the change
    tried: tuple[tuple[str, ...], ...]  # every swap run, in order
    confirmed_by: Pins | None  # the pins of the run that changed only the culprit(s)
    searched: bool = True  # False: the search was cut short by the time budget


def find_culprits(
    claim: str, old: Pins, new: Pins, target: str, evaluate: Evaluator, prefetch: Prefetch = _no_prefetch
) -> list[Culprit]:
    """The packages whose upgrade alone from `old` gives `target` (the new result) for `claim`;
    pairs when no single one does."""
    names = differing(old, new)
    tried: list[tuple[str, ...]] = []
    found: list[Culprit] = []
    for group_size in (1, 2):
        if group_size == 2 and len(names) > MAX_PAIR_PINS:
            break
        prefetch(
            [new if len(names) == group_size else swap(old, new, g) for g in combinations(names, group_size)]
        )
        for group in combinations(names, group_size):
            pins = new if len(names) == group_size else swap(old, new, group)
            try:
                result = evaluate(pins)[claim]
            except Unavailable:
                return [Culprit(claim, (), tuple(tried), None, searched=False)]
            tried.append(group)
            if result == target:
                found.append(Culprit(claim, group, (), pins))
        if found:
            return [Culprit(c.claim, c.packages, tuple(tried), c.confirmed_by) for c in found]
    return [Culprit(claim, (), tuple(tried), None)]
