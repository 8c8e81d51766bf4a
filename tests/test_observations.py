"""Normalisation: revision ids, paths and database names never reach a snapshot."""

from pathlib import Path

from harness.observe.migration import Op, Revision
from harness.observe.normalise import observe
from harness.records import CommandRecord, InvariantResult, ScenarioRun, StepRecord
from harness.runners.base import CommandResult
from harness.scenario import Command, Scenario, Step
from harness.stacks import Stack, StackEnv


def make_run(first: str, second: str) -> ScenarioRun:
    migrate = Command(name="migrate", arg="add pets", line=5)
    step = Step(name="pets", models="...", models_line=3, commands=(migrate,), line=2)
    scenario = Scenario(id="pets", title="t", path=Path("scenarios/pets.yaml"), steps=(step,))
    env = StackEnv(
        stack=Stack("current", "", ()), path=Path("/cache/current-x"), versions={}, python_version="3"
    )
    revs = [
        Revision(
            first,
            None,
            "one",
            "op.create_table('pets')\n",
            "op.drop_table('pets')\n",
            (Op("create_table", "pets"),),
            (Op("drop_table", "pets"),),
        ),
        Revision(second, first, "two", "pass\n", "pass\n", (), ()),
    ]
    result = CommandResult(
        ("flask",), 1, "", f"Error: Can't locate revision {second} in /tmp/p1/project\n", 0.1
    )
    record = StepRecord(
        step=step,
        commands=[CommandRecord(migrate, result)],
        revisions=revs,
        detected=["added table 'pets'"],
        schema={"alembic_version": [second]},
    )
    run = ScenarioRun(scenario=scenario, stack=env, steps=[record])
    run.invariants = [InvariantResult("roundtrip", False, f"left at {first}", known="enum types stay")]
    run.replacements = {"/tmp/p1/project": "<project>", "mh_pets_1_abc": "<database>"}
    return run


def test_ids_and_paths_are_replaced_in_order_of_creation():
    data = observe(make_run("aaaaaaaaaaaa", "bbbbbbbbbbbb"))
    step = data["steps"][0]
    revisions = step["migration"]["revisions"]
    assert [(r["revision"], r["down_revision"]) for r in revisions] == [
        ("<rev1>", None),
        ("<rev2>", "<rev1>"),
    ]
    assert step["schema"]["alembic_version"] == ["<rev2>"]
    assert step["commands"][0]["error"] == "Error: Can't locate revision <rev2> in <project>"
    assert data["invariants"]["roundtrip"] == "fails (known: enum types stay): left at <rev1>"
    assert revisions[0]["upgrade_ops"] == [{"op": "create_table", "table": "pets"}]


def test_two_runs_with_different_ids_give_identical_observations():
    assert observe(make_run("aaaaaaaaaaaa", "bbbbbbbbbbbb")) == observe(
        make_run("123456789abc", "cba987654321")
    )
