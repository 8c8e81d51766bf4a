"""Benchmark: the scenario library with each runner, serial and with xdist workers, against a floor.

    python -m benchmarks.bench [--stack current] [--runners fork,subprocess] [--workers 1,2] [PATHS]

Each mode is one ordinary ``pytest`` run of the library (a fresh throwaway server each, its start
included in the wall time), with ``benchmarks.timing_plugin`` recording every ``flask db``
command's time. The floor is measured in the same run by ``floor_main.py``: the same models
through Alembic's Python API in one process. Printed: per-command medians by runner and
command, the floor's medians, wall times, and the ratios the targets of issue 6 name. Figures,
not verdicts: nothing here fails on a slow machine; the targets are marked met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.timing_plugin import DIR_ENV
from harness.database import scratch_database
from harness.project import FIXTURE
from harness.scenario import Scenario, is_scenario_file, load_scenario
from harness.server import URL_ENV
from harness.session import Options, Session
from harness.stacks import StackEnv

ROOT = Path(__file__).resolve().parent.parent
FLOOR_SCRIPT = Path(__file__).resolve().parent / "floor_main.py"
KINDS = ("all", "init", "migrate", "upgrade", "downgrade")


@dataclass
class ModeResult:
    runner: str
    workers: int
    wall: float
    tests: int
    failed: int
    load_before: float
    load_after: float
    times: dict[str, list[float]] = field(default_factory=dict)  # command kind -> seconds

    @property
    def label(self) -> str:
        return f"{self.runner}, {'serial' if self.workers <= 1 else f'-n {self.workers}'}"


def scenario_files(paths: list[str]) -> list[Path]:
    found: set[Path] = set()
    for arg in paths:
        path = (ROOT / arg).resolve()
        candidates = [path] if path.is_file() else path.rglob("*.y*ml")
        found.update(p.relative_to(ROOT) for p in candidates if is_scenario_file(p.relative_to(ROOT)))
    return sorted(found)


def _by_kind(lines: list[dict[str, Any]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"all": [line["seconds"] for line in lines]}
    for line in lines:
        times.setdefault(line["command"], []).append(line["seconds"])
    return times


def run_library(runner: str, workers: int, stack: str, files: list[Path], pg_url: str | None) -> ModeResult:
    """One pytest run of `files`; wall time includes interpreter, server and fork server starts."""
    with tempfile.TemporaryDirectory(prefix="migrate-harness-bench-") as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = [sys.executable, "-m", "pytest", *map(str, files), "--stack", stack, "--runner", runner]
        argv += ["-p", "benchmarks.timing_plugin", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}"]
        argv += ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
        if pg_url:
            argv += ["--pg-url", pg_url]
        env = {**os.environ, DIR_ENV: tmp, "PYTHONPATH": str(ROOT)}
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if not junit.exists():
            raise SystemExit(
                f"pytest did not run ({' '.join(argv)}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        lines = [json.loads(line) for f in Path(tmp).glob("*.jsonl") for line in f.read_text().splitlines()]
        return ModeResult(
            runner=runner,
            workers=workers,
            wall=wall,
            tests=int(suite.get("tests", 0)),
            failed=int(suite.get("failures", 0)) + int(suite.get("errors", 0)),
            load_before=load_before,
            load_after=os.getloadavg()[0],
            times=_by_kind(lines),
        )


def _floor_job(scenario: Scenario, url: str) -> dict[str, Any]:
    return {
        "id": scenario.id,
        "url": url,
        "options": scenario.migrate_options,
        "steps": [
            {"models": step.models, "commands": [[c.name, c.arg] for c in step.commands]}
            for step in scenario.steps
        ],
    }


def run_floor(
    env: StackEnv, files: list[Path], pg_url: str | None
) -> tuple[dict[str, list[float]], list[str], str]:
    """The floor's timings by kind ("migrate", "upgrade", "all"), the errors it met, the server version."""
    scenarios = [load_scenario(path) for path in files]
    with Session(Options(pg_url=pg_url)) as session, ExitStack() as stack:
        server = session.server()
        jobs = [
            _floor_job(
                s, stack.enter_context(scratch_database(server, s.id)).render_as_string(hide_password=False)
            )
            for s in scenarios
        ]
        header = (FIXTURE / "app" / "models.py").read_text()
        done = subprocess.run(
            [str(env.executable("python")), str(FLOOR_SCRIPT)],
            input=json.dumps({"header": header, "scenarios": jobs}),
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
        )
        version = server.version
    if done.returncode != 0:
        raise SystemExit(f"the floor script failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    lines = [{"command": t["op"], "seconds": t["seconds"]} for t in result["timings"]]
    return _by_kind(lines), result["errors"], version


def median_ms(values: list[float] | None) -> float | None:
    return statistics.median(values) * 1000 if values else None


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.1f}{unit}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(
    console: Console, results: list[ModeResult], floor: dict[str, list[float]], meta: dict[str, Any]
) -> dict:
    table = Table(title="per-command medians (ms); n = commands timed")
    table.add_column("mode")
    for kind in KINDS:
        table.add_column(kind, justify="right")
    table.add_column("wall (s)", justify="right")
    table.add_column("tests / failed", justify="right")
    table.add_column("load 1m before/after", justify="right")
    for r in results:
        cells = [f"{_fmt(median_ms(r.times.get(k)))} (n={len(r.times.get(k, []))})" for k in KINDS]
        table.add_row(
            r.label,
            *cells,
            _fmt(r.wall),
            f"{r.tests} / {r.failed}",
            f"{r.load_before:.1f} / {r.load_after:.1f}",
        )
    floor_cells = [
        f"{_fmt(median_ms(floor.get(k)))} (n={len(floor.get(k, []))})" if k in floor else "-" for k in KINDS
    ]
    table.add_row("floor (Alembic API, one process)", *floor_cells, "-", "-", "-")
    console.print(table)

    def find(runner: str, workers: int) -> ModeResult | None:
        return next((r for r in results if r.runner == runner and r.workers == workers), None)

    sub, fork = find("subprocess", 1) or find("subprocess", 2), find("fork", 1) or find("fork", 2)
    ratios: dict[str, tuple[float | None, str, bool | None]] = {}

    def target(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        ratios[name] = (value, goal, ok)

    # Every ratio the run can compute, per command kind, in one table: a kind with no commands
    # (or none in the floor) shows "-" rather than disappearing.
    if sub and fork:
        for kind in KINDS:
            value = _ratio(median_ms(sub.times.get(kind)), median_ms(fork.times.get(kind)))
            target(
                f"subprocess / fork per command ({kind})",
                value,
                ">= 10",
                None if value is None else value >= 10,
            )
    if fork:
        for kind in KINDS:
            value = _ratio(median_ms(fork.times.get(kind)), median_ms(floor.get(kind)))
            target(f"fork / floor per command ({kind})", value, "<= 3", None if value is None else value <= 3)
    for runner in ("fork", "subprocess"):
        serial, parallel = find(runner, 1), find(runner, 2)
        if serial and parallel:
            value = serial.wall / parallel.wall
            target(f"{runner}: serial wall / -n 2 wall", value, ">= 1.6", value >= 1.6)
    best_fork = min((r.wall for r in results if r.runner == "fork"), default=None)
    if best_fork is not None:
        n = max(r.tests for r in results if r.runner == "fork")
        target(f"fork: whole library wall, {n} scenarios (s)", best_fork, "< 60", best_fork < 60)
    summary = Table(title="targets (issue 6)")
    for column in ("ratio", "value", "target", "met"):
        summary.add_column(column)
    for name, (value, goal, ok) in ratios.items():
        summary.add_row(
            name,
            _fmt(value) if value and value >= 100 else f"{value:.2f}" if value else "-",
            goal,
            "-" if ok is None else "yes" if ok else "NO",
        )
    console.print(summary)
    console.print(
        f"machine: {meta['cpus']} CPUs, load average at start {meta['load_start']}, "
        f"at end {meta['load_end']}; "
        f"stack {meta['stack']} ({meta['versions']}); PostgreSQL {meta['server']}"
    )
    return {name: {"value": v, "target": g, "met": ok} for name, (v, g, ok) in ratios.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", default=["scenarios"], help="scenario files or folders")
    parser.add_argument("--stack", default="current")
    parser.add_argument("--runners", default="fork,subprocess", help="comma-separated: fork,subprocess")
    parser.add_argument("--workers", default="1,2", help="comma-separated xdist worker counts (1 = serial)")
    parser.add_argument("--pg-url", default=os.environ.get(URL_ENV), help="use a running server")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    console = Console(width=200)
    files = scenario_files(args.paths)
    with Session() as session:
        env = session.stack_env(args.stack)
    meta: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "stack": args.stack,
        "scenarios": len(files),
        "versions": ", ".join(
            f"{k} {env.versions[k]}"
            for k in ("flask", "alembic", "sqlalchemy", "flask-migrate")
            if k in env.versions
        ),
    }
    console.print(f"{len(files)} scenarios on stack {args.stack}; load average {meta['load_start']}")
    results = []
    for runner in args.runners.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            console.print(f"running the library: {runner}, workers={workers} ...")
            results.append(run_library(runner, workers, args.stack, files, args.pg_url))
            console.print(
                f"  {results[-1].wall:.1f}s, {results[-1].tests} tests, {results[-1].failed} failed"
            )
    console.print("measuring the floor ...")
    floor, floor_errors, meta["server"] = run_floor(env, files, args.pg_url)
    meta["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    ratios = report(console, results, floor, meta)
    if floor_errors:
        console.print(f"floor: {len(floor_errors)} step(s) failed as their scenarios expect or differ:")
        for error in floor_errors:
            console.print(f"  {error}", markup=False)
    if args.json:
        data = {"meta": meta, "modes": [asdict(r) for r in results], "floor": floor, "ratios": ratios}
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
