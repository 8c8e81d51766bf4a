"""Authoring: the template is valid and runs; `show` prints migrations and schema, then cleans up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import authoring
from harness.database import leftover_databases
from harness.scenario import load_scenario
from harness.server import Server

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.authoring", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_new_writes_a_valid_commented_template(tmp_path: Path) -> None:
    path = tmp_path / "scenarios" / "columns" / "My Change.yaml"
    assert authoring.main(["new", str(path)]) == 0
    scenario = load_scenario(path)
    assert scenario.id == "my_change"
    assert [c.name for c in scenario.steps[-1].commands][-1] == "upgrade"  # ends at head: invariants run
    text = path.read_text()
    assert "# " in text and "docs/scenarios.md" in text


def test_new_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "scenarios" / "mine.yaml"
    path.parent.mkdir()
    path.write_text("keep me\n")
    assert authoring.main(["new", str(path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert path.read_text() == "keep me\n"


def test_new_refuses_an_id_another_scenario_uses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "scenarios" / "columns" / "mine.yaml"
    assert authoring.main(["new", str(first)]) == 0
    again = tmp_path / "scenarios" / "tables" / "mine.yaml"
    assert authoring.main(["new", str(again)]) == 1
    assert f"the id 'mine' is already used by {first}" in capsys.readouterr().err
    assert not again.exists()


@pytest.mark.parametrize(
    ("name", "message"), [("elsewhere/x.yaml", "scenarios/ folder"), ("scenarios/x.txt", "end in .yaml")]
)
def test_new_refuses_paths_pytest_would_not_collect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    assert authoring.main(["new", str(tmp_path / name)]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / name).exists()


def test_show_names_the_file_and_line_of_a_bad_scenario(tmp_path: Path) -> None:
    path = tmp_path / "scenarios" / "bad.yaml"
    path.parent.mkdir()
    path.write_text("id: bad\ntitle: t\nsteps:\n  - name: s\n    commands:\n      - upgarde\n")
    done = run_cli("show", str(path), "--pg-url", "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 1
    assert f"{path}:6:" in done.stderr and "unknown command 'upgarde'" in done.stderr


@pytest.mark.needs_server
def test_show_runs_the_scaffolded_template(tmp_path: Path, harness_server: Server) -> None:
    """A scenario written by `new` runs first time; `show` prints its migration and schema, leaves nothing."""
    path = tmp_path / "scenarios" / "first_try.yaml"
    assert authoring.main(["new", str(path)]) == 0
    url = harness_server.url.render_as_string(hide_password=False)
    # in the environment, not on the command line (where, as root, the harness warns about it)
    done = run_cli("show", str(path), env={**os.environ, "MIGRATE_HARNESS_PG_URL": url})
    # no snapshot yet: pytest would fail it, so show exits 1 and says what to run
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("outcome: FAILED (as pytest reports it)\nno snapshot "), done.stderr
    assert "tox -e update -- " in done.stderr
    out = done.stdout
    assert out.startswith("# stack current: alembic ")
    assert "op.create_table('owners'" in out
    assert "batch_op.add_column(sa.Column('phone', sa.String(length=20), nullable=True))" in out
    assert "type: character varying(20)" in out  # the schema after the step
    assert "autogenerate_clean: holds" in out and "roundtrip: holds" in out
    assert leftover_databases(harness_server) == []


@pytest.fixture
def private_tmp() -> Iterator[Path]:
    """A TMPDIR the server's unprivileged account can enter (pytest's own tmp_path is 0700 under root)."""
    folder = Path(tempfile.mkdtemp(prefix="authoring-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.needs_server
def test_show_starts_and_removes_its_own_server(private_tmp: Path) -> None:
    scenario = ROOT / "scenarios" / "tables" / "second_model.yaml"
    env = {k: v for k, v in os.environ.items() if k != "MIGRATE_HARNESS_PG_URL"}
    env["TMPDIR"] = str(private_tmp)
    done = run_cli("show", str(scenario), "--yaml", env=env)
    assert done.returncode == 0, done.stderr
    assert (ROOT / "scenarios/tables/__snapshots__/second_model.yaml").read_text() in done.stdout
    assert list(private_tmp.iterdir()) == []  # server folder and temporary project both gone
