"""A pytest plugin the benchmark loads (``-p benchmarks.timing_plugin``): it appends the time of
every ``flask db`` command a scenario ran to a JSON-lines file per worker, so the benchmark can
take per-command medians from a normal pytest run (xdist workers included).

The directory comes from ``MIGRATE_HARNESS_BENCH_DIR``; without it the plugin does nothing.
The invariant checks' own commands are not in the scenario's records and are not counted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

DIR_ENV = "MIGRATE_HARNESS_BENCH_DIR"


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    folder = os.environ.get(DIR_ENV)
    result = getattr(item, "result", None)  # a ScenarioItem's ScenarioCheck, once it has run
    run = result.run if result is not None else None
    if not folder or run is None:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(Path(folder) / f"{worker}.jsonl", "a", encoding="utf-8") as out:
        for step in run.steps:
            for record in step.commands:
                if record.result is not None:
                    line = {"scenario": run.scenario.id, "command": record.command.name}
                    line["seconds"] = record.result.seconds
                    out.write(json.dumps(line) + "\n")
