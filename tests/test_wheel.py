"""The harness as another tutorial's repository gets it: the built wheel, installed (not editable) in
a fresh virtual environment, runs one scenario and one claim from a folder outside this repository,
with its inputs named by ini options."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import uv
from helpers import STACK_CACHE

from harness import store
from harness.claims.article import load_article
from harness.server import Server

pytestmark = pytest.mark.needs_server

ROOT = Path(__file__).resolve().parent.parent


def _uv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    done = subprocess.run(
        [uv.find_uv_bin(), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, f"uv {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (a build writes build/ and egg-info beside them)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("harness", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--wheel", "--out-dir", str(out), str(source), cwd=source)
    (built,) = out.glob("migrate_harness-*.whl")
    return built


def test_the_wheel_holds_every_package_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "harness/claims/checks.py",
        "harness/plugin/__init__.py",
        "harness/runners/forkserver_main.py",
        "harness/observe/schema.py",
        "harness/scenario.schema.json",
    ):
        assert needed in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "[pytest11]\nmigrate_harness = harness.plugin" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_an_installed_wheel_runs_a_scenario_and_a_claim_outside_the_repo(
    wheel: Path, harness_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    venv = tmp_path_factory.mktemp("venv") / "env"
    _uv("venv", "--python", sys.executable, str(venv), cwd=venv.parent)
    _uv("pip", "install", "--python", str(venv / "bin" / "python"), str(wheel), cwd=venv.parent)
    other = tmp_path_factory.mktemp("another-tutorial")
    shutil.copytree(ROOT / "fixtures" / "project", other / "tutorial-project")
    shutil.copy(ROOT / "stacks.toml", other / "stacks.toml")
    (other / "checks" / "__snapshots__").mkdir(parents=True)
    shutil.copy(ROOT / "scenarios/tables/second_model.yaml", other / "checks")
    shutil.copy(ROOT / "scenarios/tables/__snapshots__/second_model.yaml", other / "checks" / "__snapshots__")
    (other / "claims" / "verdicts").mkdir(parents=True)
    (other / "claims" / "catalogue.yaml").write_text(
        "claims:\n  - id: init_tree\n    section: s\n    claim: c\n    check: init_tree\n"
    )
    recorded = store.read_records(ROOT / "claims" / "verdicts" / "current.yaml")
    (other / "claims" / "verdicts" / "current.yaml").write_text(
        store.dump({"init_tree": recorded["init_tree"]})
    )
    (other / "claims" / "transcripts").mkdir()
    shutil.copy(ROOT / "claims" / "transcripts" / "current.yaml", other / "claims" / "transcripts")
    (other / "pytest.ini").write_text(
        "[pytest]\n"
        "migrate_harness_scenarios = checks\n"
        "migrate_harness_fixture = tutorial-project\n"
        "migrate_harness_stacks = stacks.toml\n"
        "migrate_harness_catalogue = claims/catalogue.yaml\n"
        f"migrate_harness_article = {load_article().path}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["MIGRATE_HARNESS_CACHE"] = STACK_CACHE
    done = subprocess.run(
        [
            str(venv / "bin" / "pytest"),
            "-p",
            "no:cacheprovider",
            "--claims-stack",
            "current",
            # the fork runner: its server script must ship in the wheel and run from there
            "--runner",
            "fork",
            "--claims-runner",
            "fork",
            "-v",
            "--pg-url",
            harness_server.url.render_as_string(hide_password=False),
            "checks",
            "claims",
        ],
        cwd=other,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "checks/second_model.yaml::second_model[current] PASSED" in done.stdout
    assert "claims/catalogue.yaml::init_tree[current] PASSED" in done.stdout
    assert "claims/catalogue.yaml::transcript[current] PASSED" in done.stdout
    assert "3 passed" in done.stdout
    # the wheel's own harness ran, not this checkout
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import harness; print(harness.__file__)"],
        cwd=other,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where
