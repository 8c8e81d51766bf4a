"""The detection table: the committed page matches the snapshots, and the classification rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import detection
from harness.detection import COMPLETE, MISSED, PARTIAL, DetectionError, change_steps, classify
from harness.scenario import parse_scenario, scenario_files

ROOT = Path(__file__).resolve().parent.parent


def test_committed_table_matches_the_snapshots() -> None:
    committed = (ROOT / "docs" / "detection.md").read_text(encoding="utf-8")
    assert committed == detection.generate(), "docs/detection.md is stale: run `tox -e detection`"


def test_every_scenario_has_a_row() -> None:
    text = detection.generate()
    for path in scenario_files(detection.SCENARIOS):
        assert f"(../{path.relative_to(ROOT).as_posix()})" in text


def test_the_library_holds_every_verdict() -> None:
    """The rule separates the library's scenarios; if it called everything one thing it would be useless."""
    rows = [detection.build_row(p) for p in scenario_files(detection.SCENARIOS)]
    results = {r.verdict.result for r in rows}
    assert results == {COMPLETE, PARTIAL, MISSED}


def test_every_fix_names_a_pitfall_of_the_library_and_is_complete() -> None:
    """A fix scenario repairs a partial or missed row, and is itself complete: else it fixes nothing."""
    rows = {r.id: r for r in (detection.build_row(p) for p in scenario_files(detection.SCENARIOS))}
    fixes = [r for r in rows.values() if r.fixes]
    assert fixes, "the library has fix scenarios"
    for fix in fixes:
        assert fix.verdict.result == COMPLETE, (fix.path, fix.verdict)
        for pitfall in fix.fixes:
            assert pitfall in rows, f"{fix.path}: fixes {pitfall!r}, which is no scenario id"
            assert rows[pitfall].verdict.result in (PARTIAL, MISSED), (fix.path, pitfall)


# --- the rule, on small hand-built observations -------------------------------------------------


def step(name: str, *, files: int | None = None, ops: list[str] = (), commands: list[dict] = ()) -> dict:
    out: dict[str, Any] = {
        "name": name,
        "commands": list(commands) or [{"command": "flask db upgrade", "exit": 0}],
    }
    if files is not None:
        out["migration"] = {
            "files": files,
            "detected": [],
            "revisions": [{"upgrade_ops": [{"op": op, "table": "owners"} for op in ops]}] if files else [],
        }
    return out


def observation(*steps: dict, invariants: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": "x", "title": "x", "steps": list(steps)}
    if invariants is not None:
        out["invariants"] = invariants
    return out


HOLDS = {"autogenerate_clean": "holds", "roundtrip": "holds"}


def test_ops_and_invariants_holding_is_complete() -> None:
    obs = observation(
        step("base", files=1, ops=["create_table"]), step("change", files=1, ops=["add_column"])
    )
    assert classify({**obs, "invariants": HOLDS}, [1]).result == COMPLETE


def test_no_file_for_a_change_step_is_missed() -> None:
    obs = observation(step("base", files=1, ops=["create_table"]), step("change", files=0), invariants=HOLDS)
    verdict = classify(obs, [1])
    assert verdict.result == MISSED
    assert verdict.reasons == ("step 2 (change): no migration file",)


def test_a_file_without_operations_is_missed() -> None:
    obs = observation(step("base", files=1, ops=["create_table"]), step("change", files=1, ops=[]))
    assert classify(obs, [1]).result == MISSED


def test_only_change_steps_count() -> None:
    """A step that is not a change step may produce nothing without the scenario being missed."""
    obs = observation(
        step("base", files=1, ops=["create_table"]), step("no change", files=0), invariants=HOLDS
    )
    assert classify(obs, [0]).result == COMPLETE


def test_missed_wins_over_partial() -> None:
    obs = observation(
        step("base", files=1, ops=["create_table"]),
        step("change", files=0),
        invariants={"autogenerate_clean": "holds", "roundtrip": "fails (known: x): y"},
    )
    assert classify(obs, [1]).result == MISSED


def test_a_failing_invariant_is_partial() -> None:
    obs = observation(
        step("change", files=1, ops=["create_table"]),
        invariants={"autogenerate_clean": "holds", "roundtrip": "fails (known: unnamed): boom"},
    )
    verdict = classify(obs, [0])
    assert verdict == detection.Verdict(PARTIAL, ("roundtrip fails",))


def test_an_upgrade_expected_to_fail_is_partial() -> None:
    failing = {"command": "flask db upgrade", "exit": 1, "error": "x", "expect": "failure"}
    obs = observation(step("change", files=1, ops=["add_column"], commands=[failing]))
    assert classify(obs, [0]).reasons == ("`flask db upgrade` fails",)


def test_refused_data_is_partial() -> None:
    refused = {"command": "sql: INSERT INTO t VALUES (1)", "error": "duplicate key", "expect": "failure"}
    obs = observation(step("change", files=1, ops=["add_column"], commands=[refused]), invariants=HOLDS)
    assert classify(obs, [0]).reasons == ("the database refused data the models allow",)


def query(rows: list[list[Any]]) -> dict[str, Any]:
    return {"command": "query: SELECT", "rows": rows}


def test_rows_lost_between_queries_is_partial() -> None:
    obs = observation(
        step("base", files=1, ops=["create_table"], commands=[query([[1, "Ada"]])]),
        step("change", files=1, ops=["create_table", "drop_table"], commands=[query([])]),
        invariants=HOLDS,
    )
    assert classify(obs, [1]).reasons == ("rows lost: a query returned 0 of 1 rows",)


def test_a_value_turned_null_is_partial() -> None:
    obs = observation(
        step("base", files=1, ops=["create_table"], commands=[query([[1, "countess"]])]),
        step("change", files=1, ops=["add_column", "drop_column"], commands=[query([[1, None]])]),
        invariants=HOLDS,
    )
    assert classify(obs, [1]).reasons == ("values lost: 'countess' came back as NULL",)


def test_values_kept_in_another_form_are_not_lost() -> None:
    """Numeric(10, 2) -> Numeric(12, 4) shows 12.50 as 12.5000: a value, not a loss."""
    obs = observation(
        step("base", files=1, ops=["create_table"], commands=[query([[1, "12.50"]])]),
        step("change", files=1, ops=["alter_column"], commands=[query([[1, "12.5000", "extra"]])]),
        invariants=HOLDS,
    )
    assert classify(obs, [1]).result == COMPLETE


# --- which steps are change steps ----------------------------------------------------------------

MODELS_A = "      class A(db.Model):\n          id = db.Column(db.Integer, primary_key=True)\n"
MODELS_B = "      class B(db.Model):\n          id = db.Column(db.Integer, primary_key=True)\n"


def scenario(*steps: tuple[str | None, list[str]]) -> Any:
    lines = ["id: x", "title: x", "steps:"]
    for index, (models, commands) in enumerate(steps):
        lines.append(f"  - name: s{index}")
        if models is not None:
            lines += ["    models: |", models.rstrip("\n")]
        lines.append("    commands:")
        lines += [f"      - {c}" for c in commands]
    return parse_scenario("\n".join(lines) + "\n", Path("scenarios/x.yaml"))


def test_the_first_migrate_step_is_the_baseline() -> None:
    s = scenario((MODELS_A, ["init", "migrate: a", "upgrade"]), (MODELS_B, ["migrate: b", "upgrade"]))
    assert change_steps(s) == [1]


def test_a_single_migrate_step_is_the_change() -> None:
    s = scenario((None, ["init"]), (MODELS_A, ["migrate: a", "upgrade"]))
    assert change_steps(s) == [1]


def test_unchanged_models_do_not_make_a_change_step() -> None:
    s = scenario(
        (MODELS_A, ["init", "migrate: a", "upgrade"]),
        (MODELS_A, ["migrate: again"]),
        (None, ["migrate: and again"]),
        (MODELS_B, ["migrate: b"]),
    )
    assert change_steps(s) == [3]


# --- errors --------------------------------------------------------------------------------------


def test_a_scenario_without_snapshot_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    path = folder / "lonely.yaml"
    path.write_text("id: lonely\ntitle: t\nsteps:\n  - name: s\n    commands:\n      - init\n")
    with pytest.raises(
        DetectionError, match=r"scenarios/lonely.yaml: no snapshot lonely.yaml .*tox -e update"
    ):
        detection.build_row(path, repo=tmp_path)


def test_check_mode_reports_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "detection.md"
    stale.write_text("old\n")
    assert detection.main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert detection.main(["--output", str(stale)]) == 0
    assert detection.main(["--check", "--output", str(stale)]) == 0
