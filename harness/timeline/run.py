"""`python -m harness.timeline.run` (tox -e timeline): the truth timeline, cold or incremental.

Every day from 2020-01-01 to today has one resolution of the article's install line (see
`datestacks`); each distinct resolution is probed once (the article followed through a session,
the claims checked) and its results are kept in docs/timeline.json, the record. The search
(`search`) samples a grid of days and bisects wherever two neighbouring samples differ (split at
the days a release was uploaded), then names the release behind each change by upgrading the
differing pins one at a time. The search probes through the fork runner; every resolution the
page names as evidence is probed again through the subprocess runner (`check_runner`).

Incremental: the record's resolved days and probed resolutions are reused (an upload cannot change
the past: --exclude-newer days already resolved stay as they were), so a run with no new release
resolves today's day, finds the resolution it already had, and stops. The record is trusted only
while its fingerprint (the probe, the checks, the catalogue, the article's line, the exemptions)
matches; otherwise the run is cold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from harness.claims.article import Article, load_article
from harness.claims.catalogue import Claim, load_catalogue
from harness.claims.checks import Verdict, run_check
from harness.claims.probe import probe
from harness.judge import NOT_CHECKED
from harness.session import Options, Session, add_arguments
from harness.stacks import StackError
from harness.timeline import datestacks, search
from harness.timeline.datestacks import EXEMPTIONS, SEED, Pins, pins_key
from harness.timeline.eras import compare_eras

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "docs" / "timeline.json"
CATALOGUE = ROOT / "claims" / "catalogue.yaml"
START = date(2020, 1, 1)
STEP_DAYS = 365
NOT_INSTALLABLE = "not installable"
# The search probes through the fork runner (docs/performance.md: the same `flask` console script,
# forked from a parent that has imported the libraries; about 4x faster a probe); every resolution
# the page names as evidence is probed again through the subprocess runner, one process per
# command as a reader's shell runs them (`CHECK_RUNNER`), and the page says whether they agree.
SEARCH_RUNNER = "fork"
CHECK_RUNNER = "subprocess"
# the sources whose change makes recorded results stale
FINGERPRINTED = (
    "harness/claims/probe.py",
    "harness/claims/checks.py",
    "harness/claims/output.py",
    "claims/catalogue.yaml",
)

_VERSION = re.compile(r"(?<![\w.])v?\d+(?:\.\d+)+(?:[a-z]+\d*)?(?:\.post\d+)?(?![\w.])")
_REVISION = re.compile(r"\b[0-9a-f]{12}\b")


def normalise_evidence(observed: str) -> str:
    """The evidence with what changes on every release taken out: version numbers (the install
    line names what it installed) and revision ids. What a claim says about the behaviour stays."""
    return _REVISION.sub("<rev>", _VERSION.sub("<v>", observed))


def claim_result(verdict: Verdict) -> str:
    """A claim's result on a day: the one definition the timeline compares (today the verdict word
    and the normalised evidence; switch it to the evidence record of issue 9 here)."""
    return f"{verdict.verdict}: {normalise_evidence(verdict.observed)}"


def verdict_of(result: str) -> str:
    return result.split(":", 1)[0]


def probe_fingerprint(article: Article, runner: str = SEARCH_RUNNER) -> str:
    """What a resolution's results depend on besides its pins: the probe, the checks, the catalogue,
    the runner the probe's commands go through."""
    blob = [(ROOT / p).read_text(encoding="utf-8") for p in FINGERPRINTED] + [list(article.install_packages)]
    return hashlib.sha256(json.dumps([*blob, runner]).encode()).hexdigest()[:16]


def fingerprint(article: Article, runner: str = SEARCH_RUNNER) -> str:
    """What the record depends on: the results' fingerprint, and what decides a day's pins."""
    blob = [
        probe_fingerprint(article, runner),
        [(e.package, e.until.isoformat()) for e in EXEMPTIONS],
        SEED[0],
    ]
    return hashlib.sha256(json.dumps(blob).encode()).hexdigest()[:16]


@dataclass
class Prober:
    """Evaluate a resolution: build its environment, follow the article, check every claim.

    Cached by the pins (`results`, loaded from the record on an incremental run). A resolution
    that does not install gives every claim the result "not installable: <why>".
    """

    session: Session
    article: Article
    claims: list[Claim]
    results: dict[str, dict[str, str]] = field(default_factory=dict)  # pins key -> claim -> result
    pins: dict[str, Pins] = field(default_factory=dict)
    probes: int = 0
    log: Callable[[str], None] = print
    journal: Path | None = None
    deadline: float | None = None  # time.monotonic() after which no new resolution is probed
    extra_sessions: list[Session] = field(default_factory=list)  # for parallel probes (--jobs)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resume(self) -> int:
        """Take the results a run cut short wrote to the journal."""
        if self.journal is None or not self.journal.exists():
            return 0
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            self.pins[entry["key"]] = tuple(sorted(entry["pins"].items()))
            self.results[entry["key"]] = entry["results"]
        return len(self.results)

    def __call__(self, pins: Pins | None) -> dict[str, str]:
        if pins is None:
            return {c.id: f"{NOT_INSTALLABLE}: the line does not resolve" for c in self.claims}
        key = pins_key(pins)
        if key not in self.results:
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise search.Unavailable(key)
            self.pins[key] = pins
            self.results[key] = self._probe(key, pins, self.session)
        return self.results[key]

    def prefetch(self, many: list[Pins | None]) -> None:
        """Probe several new resolutions at once, one per session of `extra_sessions` and the main
        one (each session has its own server and runners, so the probes share nothing)."""
        todo = list(
            {pins_key(p): p for p in many if p is not None and pins_key(p) not in self.results}.items()
        )
        sessions = [self.session, *self.extra_sessions]
        if len(todo) < 2 or len(sessions) < 2:
            return
        free: queue.Queue[Session] = queue.Queue()
        for s in sessions:
            free.put(s)

        def one(item: tuple[str, Pins]) -> None:
            key, pins = item
            if self.deadline is not None and time.monotonic() > self.deadline:
                return
            session = free.get()
            try:
                results = self._probe(key, pins, session)
            finally:
                free.put(session)
            with self.lock:
                self.pins[key], self.results[key] = pins, results

        with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
            list(pool.map(one, todo))

    def _probe(self, key: str, pins: Pins, session: Session) -> dict[str, str]:
        start = time.perf_counter()
        name = f"date-{key}"
        try:
            env = datestacks.build_env(name, self.article.install_packages, pins)
        except StackError as exc:
            first = str(exc).splitlines()[0]
            self.log(f"  {key}: {first}")
            return {c.id: f"{NOT_INSTALLABLE}: {first.split(': ', 1)[-1]}" for c in self.claims}
        session.adopt_env(env)
        self.probes += 1
        try:
            obs = probe(session, name, self.article)
        except Exception as exc:  # one broken probe never stops the timeline; it is reported
            self.log(f"  {key}: the probe failed: {type(exc).__name__}: {exc}")
            return {c.id: f"{NOT_CHECKED}: the probe failed: {type(exc).__name__}" for c in self.claims}
        finally:
            session.release(name)  # no fork server left running per date stack
        out = {c.id: claim_result(run_check(c.check, obs, self.article)) for c in self.claims}
        if self.journal is not None:  # so that a run cut short can be resumed (--resume)
            with self.lock, self.journal.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "pins": dict(pins), "results": out}) + "\n")
        short = " ".join(
            f"{n}={v}" for n, v in pins if n in ("flask", "sqlalchemy", "alembic", "flask-migrate")
        )
        runner = session.options.claims_runner
        self.log(f"  probed {key} ({short}) with the {runner} runner in {time.perf_counter() - start:.0f}s")
        return out


@contextmanager
def runner_kind(sessions: list[Session], kind: str) -> Iterator[None]:
    """The sessions' claims probes go through the `kind` runner for the block."""
    saved = [s.options for s in sessions]
    for s in sessions:
        s.options = replace(s.options, claims_runner=kind)
    try:
        yield
    finally:
        for s, options in zip(sessions, saved, strict=True):
            s.options = options


def evidence_keys(record: dict[str, Any]) -> list[str]:
    """The resolutions the page names as evidence: each change's two sides and its culprit runs."""
    keys: list[str] = []
    for change in record["changes"]:
        for key in (
            change["old_resolution"],
            change["new_resolution"],
            *(c["confirmed_by"] for c in change["culprits"]),
        ):
            if key and key not in keys:
                keys.append(key)
    return keys


def check_runner(
    record: dict[str, Any], prober: Prober, kind: str, known: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """Probe every evidence resolution again through the `kind` runner (the reader's one process per
    command) and say which claims' results differ from the search's; `known`: an earlier run's."""
    checker = Prober(
        prober.session,
        prober.article,
        prober.claims,
        results=dict(known or {}),
        log=prober.log,
        deadline=prober.deadline,
        extra_sessions=prober.extra_sessions,
    )
    keys = evidence_keys(record)
    results: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    with runner_kind([prober.session, *prober.extra_sessions], kind):
        checker.prefetch([prober.pins[k] for k in keys])
        for key in keys:
            try:
                results[key] = checker(prober.pins[key])
            except search.Unavailable:
                missing.append(key)
    differ = {
        key: sorted(c for c, r in got.items() if prober.results[key].get(c) != r)
        for key, got in results.items()
    }
    prober.log(f"evidence: {len(results)} resolutions through the {kind} runner, {checker.probes} probed now")
    return {
        "runner": kind,
        "results": results,
        "differ": {k: v for k, v in differ.items() if v},
        "not_checked": missing,
    }


def load_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def from_record(
    record: dict[str, Any],
) -> tuple[dict[date, Pins | None], dict[str, dict[str, str]], dict[str, Pins]]:
    pins = {k: tuple(sorted(r["pins"].items())) for k, r in record["resolutions"].items()}
    results = {k: r["results"] for k, r in record["resolutions"].items()}
    days = {
        date.fromisoformat(d): (pins[k] if k else None)
        for d, k in record["days"].items()
        if k is None or k in pins  # a day resolved but never probed (a partial run) is resolved again
    }
    return days, results, pins


@dataclass
class Outcome:
    timeline: search.Timeline
    changes: list[search.Change]
    culprits: dict[tuple[str, str], list[search.Culprit]]  # (claim, day) -> culprits


def run_timeline(
    start: date,
    end: date,
    step_days: int,
    resolve: search.Resolver,
    evaluate: search.Evaluator,
    claims: list[str],
    known: dict[date, Pins | None] | None = None,
    prefetch: search.Prefetch | None = None,
    width: int = 1,
    uploads: search.Uploads | None = None,
) -> Outcome:
    """The whole search, on injected parts: bisection, then the culprit of every change."""
    more = {"prefetch": prefetch} if prefetch else {}
    timeline = search.bisect_timeline(
        start, end, step_days, resolve, evaluate, known, width=width, uploads=uploads, **more
    )
    timeline.with_results = set(search.evaluated_days(timeline, evaluate))

    def results(day: date) -> dict[str, str]:
        return evaluate(timeline.days[day])

    changes = search.changes(timeline, results, claims)
    culprits = {}
    for change in changes:
        old, new = timeline.days[change.before], timeline.days[change.day]
        if old is None or new is None:
            culprits[change.claim, change.day.isoformat()] = []
            continue
        culprits[change.claim, change.day.isoformat()] = search.find_culprits(
            change.claim, old, new, change.new, evaluate, **more
        )
    return Outcome(timeline, changes, culprits)


def build_record(
    outcome: Outcome,
    prober: Prober,
    article: Article,
    start: date,
    end: date,
    step_days: int,
    fp: str,
    uploads: Callable[[str, str], str] = datestacks.upload_time,
) -> dict[str, Any]:
    days = outcome.timeline.days
    # every probed resolution is kept: the days' and the culprit runs' (the evidence)
    resolutions = {
        key: {"pins": dict(prober.pins[key]), "results": prober.results[key]}
        for key in sorted(prober.results)
    }
    changes = []
    for change in outcome.changes:
        old, new = days[change.before], days[change.day]
        entry: dict[str, Any] = {
            "claim": change.claim,
            "last_good_day": change.before.isoformat(),
            "day": change.day.isoformat(),
            "old": change.old,
            "new": change.new,
            "old_resolution": pins_key(old) if old else None,
            "new_resolution": pins_key(new) if new else None,
            "culprits": [],
        }
        for culprit in outcome.culprits[change.claim, change.day.isoformat()]:
            releases = [
                {
                    "package": name,
                    "from": dict(old or ()).get(name),
                    "to": dict(new or ()).get(name),
                    "uploaded": uploads(name, dict(new or ())[name]) if name in dict(new or ()) else "",
                }
                for name in culprit.packages
            ]
            entry["culprits"].append(
                {
                    "packages": list(culprit.packages),
                    "releases": releases,
                    "confirmed_by": pins_key(culprit.confirmed_by) if culprit.confirmed_by else None,
                    "tried": [list(t) for t in culprit.tried],
                    "searched": culprit.searched,
                }
            )
        changes.append(entry)
    return {
        "schema": 1,
        "fingerprint": fp,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "step_days": step_days,
        "line": list(article.install_packages),
        "seed": {"package": SEED[0], "reason": SEED[1]},
        "exemptions": [
            {"package": e.package, "until": e.until.isoformat(), "reason": e.reason} for e in EXEMPTIONS
        ],
        "days": {d.isoformat(): (pins_key(p) if p else None) for d, p in sorted(days.items())},
        "resolutions": resolutions,
        "changes": changes,
        "with_results": sorted(d.isoformat() for d in outcome.timeline.with_results),
        "unrefined": [[a.isoformat(), b.isoformat()] for a, b in outcome.timeline.unrefined],
        "partial": bool(outcome.timeline.unrefined)
        or any(not c.searched for found in outcome.culprits.values() for c in found),
    }


def verdicts_on(timeline: search.Timeline, evaluate: search.Evaluator, day: date) -> dict[str, str]:
    """The verdicts of the window holding `day` (the latest resolved day on or before it)."""
    before = [d for d in timeline.with_results if d <= day]
    if not before:
        return {}
    return {c: verdict_of(r) for c, r in evaluate(timeline.days[max(before)]).items()}


def resolver(article: Article, errors: dict[date, str]) -> search.Resolver:
    def resolve(day: date) -> Pins | None:
        found = datestacks.resolve(article.install_packages, day)
        if found.pins is None:
            errors[day] = found.error or "does not resolve"
        return found.pins

    return resolve


def main(argv: list[str] | None = None) -> int:
    """The truth timeline: resolve, probe, bisect, name culprits; write docs/timeline.{json,md,svg}."""
    parser = argparse.ArgumentParser(prog="python -m harness.timeline.run", description=main.__doc__)
    parser.add_argument("--start", type=date.fromisoformat, default=START)
    parser.add_argument("--end", type=date.fromisoformat, default=None, help="default: today (UTC)")
    parser.add_argument("--step-days", type=int, default=STEP_DAYS, help="the grid the bisection starts from")
    parser.add_argument("--cold", action="store_true", help="ignore the record (docs/timeline.json)")
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument(
        "--scenarios",
        nargs="?",
        type=Path,
        const=ROOT / "scenarios",
        default=None,
        metavar="FOLDER",
        help="also the scenario library (or the scenarios under FOLDER) on the grid and change days",
    )
    parser.add_argument("--scenarios-budget", type=float, default=1800.0, help="seconds for --scenarios")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds; then probe nothing new and write a partial page"
    )
    parser.add_argument("--jobs", type=int, default=2, help="probes at once, each with a server of its own")
    parser.add_argument("--resume", action="store_true", help="reuse the probes of a run cut short")
    parser.add_argument("--no-render", action="store_true", help="write the record only")
    add_arguments(parser)
    parser.set_defaults(claims_runner=SEARCH_RUNNER)  # evidence is checked again with CHECK_RUNNER
    args = parser.parse_args(argv)
    end = args.end or datetime.now(UTC).date()
    started = time.perf_counter()
    article = load_article()
    claims = load_catalogue(CATALOGUE)
    fp = fingerprint(article, args.claims_runner)
    record = None if args.cold else load_record(args.record)
    known: dict[date, Pins | None] = {}
    options = Options.from_values(vars(args))
    with ExitStack() as stack:
        session = stack.enter_context(Session(options))
        extra = [stack.enter_context(Session(options)) for _ in range(max(args.jobs, 1) - 1)]
        journal = (
            datestacks.default_cache_root()
            / "timeline"
            / f"journal-{probe_fingerprint(article, args.claims_runner)}.jsonl"
        )
        journal.parent.mkdir(parents=True, exist_ok=True)
        prober = Prober(session, article, claims, journal=journal, extra_sessions=extra)
        if args.budget is not None:
            prober.deadline = time.monotonic() + args.budget
        if args.resume:
            print(f"resumed {prober.resume()} resolutions from {journal}")
        elif journal.exists():
            journal.unlink()
        if record and record.get("fingerprint") == fp and record.get("step_days") == args.step_days:
            known, prober.results, prober.pins = from_record(record)
            print(f"incremental: {len(known)} days, {len(prober.results)} resolutions from {args.record}")
        elif record:
            print(f"cold: {args.record} was made by another probe, checks, catalogue or grid")
        else:
            print("cold: no record")
        errors: dict[date, str] = {}
        outcome = run_timeline(
            args.start,
            end,
            args.step_days,
            resolver(article, errors),
            prober,
            [c.id for c in claims],
            known,
            prober.prefetch,
            width=max(args.jobs, 1),
            uploads=datestacks.upload_days,
        )
        new_record = build_record(outcome, prober, article, args.start, end, args.step_days, fp)
        new_record["resolve_errors"] = {d.isoformat(): e for d, e in sorted(errors.items())}
        new_record["search_runner"] = args.claims_runner
        if args.claims_runner != CHECK_RUNNER:
            earlier = (record or {}).get("runner_check") or {}
            trusted = known and earlier.get("runner") == CHECK_RUNNER
            new_record["runner_check"] = check_runner(
                new_record, prober, CHECK_RUNNER, earlier.get("results") if trusted else None
            )
        new_record["eras"] = compare_eras(
            article.install_packages, end, lambda day: verdicts_on(outcome.timeline, prober, day)
        )
        if args.scenarios:
            from harness.timeline.scenarios import scenario_timeline

            new_record["scenarios"] = scenario_timeline(
                session,
                outcome.timeline,
                article.install_packages,
                args.step_days,
                args.scenarios_budget,
                root=args.scenarios,
            )
        elif record and "scenarios" in record:
            new_record["scenarios"] = record["scenarios"]
    args.record.write_text(json.dumps(new_record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if not args.no_render:
        from harness.timeline.render import write_page

        write_page(new_record, args.record.parent)
    load = os.getloadavg()
    print(
        f"timeline {args.start}..{end}: {len(outcome.timeline.days)} days resolved, "
        f"{len(new_record['resolutions'])} resolutions, {prober.probes} probed this run, "
        f"{len(outcome.changes)} changes, in {time.perf_counter() - started:.0f}s "
        f"(load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
