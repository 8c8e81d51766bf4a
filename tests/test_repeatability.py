"""Repeatability: the same scenarios and claims, run once serially and once with two xdist workers,
write byte-identical snapshot files, recorded verdicts and claims reports.

Each run starts from a fresh copy with no snapshot and no recorded verdict, so every file compared is
one the run wrote (``--snapshot-update``). The snapshots must also equal the ones committed in the
library, which earlier runs wrote: so three runs agree (the committed one, a serial rerun and a
parallel rerun) for the price of two. (It ran serially twice as well, before; a second serial run
proves nothing the parallel rerun does not: both are fresh sessions, fresh databases and folders.)
Both runs use the fork runner, which tests/test_fastrunner.py proves faithful; the claims probe too.
Cost: two sessions of three library scenarios plus the claims of one stack (docs/performance.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import STACK_CACHE

from harness.server import URL_ENV, Server

pytestmark = pytest.mark.needs_server

ROOT = Path(__file__).resolve().parent.parent
# Few and varied: a plain change, an enum type (its own DDL), two pending revisions in one upgrade.
SCENARIOS = ["columns/add_column.yaml", "enums/enum_with_table.yaml", "workflow/two_pending.yaml"]


def _copy(dest: Path) -> Path:
    for name in SCENARIOS:
        target = dest / "scenarios" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "scenarios" / name, target)
    (dest / "claims").mkdir()
    shutil.copy(ROOT / "claims" / "catalogue.yaml", dest / "claims" / "catalogue.yaml")
    return dest


def _run(folder: Path, url: str, *args: str) -> dict[str, str]:
    """Run the copy in `folder`; every file the run wrote, by relative path, with its text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop(URL_ENV, None)
    env["MIGRATE_HARNESS_CACHE"] = STACK_CACHE
    argv = [sys.executable, "-m", "pytest", "--pg-url", url, "-p", "no:cacheprovider", "--snapshot-update"]
    argv += ["--runner", "fork", "--claims-runner", "fork"]
    argv += ["--claims-stack", "current", "--claims-report", "report.md", "scenarios", "claims", *args]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    written = [
        p for p in folder.rglob("*") if p.is_file() and ("__snapshots__" in p.parts or "verdicts" in p.parts)
    ]
    return {
        str(p.relative_to(folder)): p.read_text(encoding="utf-8") for p in [*written, folder / "report.md"]
    }


def test_serial_and_parallel_write_identical_snapshots_verdicts_and_claims_reports(
    tmp_path: Path, harness_server: Server
):
    url = harness_server.url.render_as_string(hide_password=False)
    serial = _run(_copy(tmp_path / "serial"), url)
    parallel = _run(_copy(tmp_path / "parallel"), url, "-n", "2")
    snapshots = sorted(p for p in serial if "__snapshots__" in p)
    assert len(snapshots) >= len(SCENARIOS)
    assert "claims/verdicts/current.yaml" in serial and "report.md" in serial
    assert sorted(parallel) == sorted(serial)
    for path in serial:
        assert parallel[path] == serial[path], f"{path} differs between serial and -n 2"
    for path in snapshots:
        assert serial[path] == (ROOT / path).read_text(encoding="utf-8"), f"{path} differs from the library's"
