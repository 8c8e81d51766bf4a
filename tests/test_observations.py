"""Normalisation: revision ids, paths, database names, ports, passwords and dates never reach a
snapshot; transcripts are kept per command; an upgrade to head must leave the database at the heads."""

from pathlib import Path

import pytest
from helpers import one_table, session_for

from harness.execute import execute, heads, upgrade_mismatch
from harness.observe.migration import Op, Revision
from harness.observe.normalise import observe, order_set_runs
from harness.records import CommandRecord, InvariantResult, ScenarioRun, StepRecord
from harness.runners.base import CommandResult, Runner
from harness.scenario import Command, Scenario, Step, parse_scenario
from harness.stacks import Stack, StackEnv


def make_run(
    first: str, second: str, port: int = 54321, password: str = "s3cr3tpw", when: str = "2026-11-26 19:05:58"
) -> ScenarioRun:
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
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/mh_pets_1_abc"
    result = CommandResult(
        ("flask",),
        1,
        f"  Generating /tmp/p1/project/migrations/versions/{first}_one.py ...  done\nCreate Date: {when}\n",
        f"INFO  [alembic.runtime.migration] Running upgrade  -> {first}, one\n"
        f'connection to server at "127.0.0.1", port {port} failed for {url}\n'
        f"password {password} rejected by <Engine object at 0x7f82ba738a40>\n"
        f"Error: Can't locate revision {second} in /tmp/p1/project\n\n",
        0.1,
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
    run.replacements = {"/tmp/p1/project": "<project>", "mh_pets_1_abc": "<database>", url: "<database-url>"}
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


def test_each_command_keeps_its_transcript_normalised_with_the_streams_apart():
    command = observe(make_run("aaaaaaaaaaaa", "bbbbbbbbbbbb"))["steps"][0]["commands"][0]
    assert command == {
        "command": "flask db migrate -m 'add pets'",
        "exit": 1,
        "stdout": "  Generating <project>/migrations/versions/<rev1>_one.py ...  done\nCreate Date: <date>\n",
        "stderr": "INFO  [alembic.runtime.migration] Running upgrade  -> <rev1>, one\n"
        'connection to server at "127.0.0.1", port <port> failed for <database-url>\n'
        "password <password> rejected by <Engine object at 0x<address>>\n"
        "Error: Can't locate revision <rev2> in <project>\n",
        "error": "Error: Can't locate revision <rev2> in <project>",
    }


def test_two_runs_with_different_ids_ports_passwords_and_dates_give_identical_observations():
    assert observe(make_run("aaaaaaaaaaaa", "bbbbbbbbbbbb")) == observe(
        make_run("123456789abc", "cba987654321", port=40001, password="other", when="2027-01-02 03:04:05")
    )


def rev(revision: str, down: str | tuple[str, ...] | None) -> Revision:
    return Revision(revision, down, "m", "pass\n", "pass\n", (), ())


def test_heads_are_the_revisions_no_other_names_as_its_parent():
    assert heads([rev("a", None), rev("b", "a"), rev("c", "a")]) == ["b", "c"]
    assert heads([rev("a", None), rev("b", "a"), rev("c", "a"), rev("m", ("b", "c"))]) == ["m"]
    assert heads([]) == []


def test_an_upgrade_to_head_must_leave_the_database_at_the_heads():
    assert upgrade_mismatch(["b"], ["b"]) is None
    assert upgrade_mismatch([], []) is None
    assert upgrade_mismatch(["a"], ["b"]) == (
        "exited 0 but the database is at ['a'], not at the heads of the revision files ['b']"
    )
    assert upgrade_mismatch([], ["b"]) == (
        "exited 0 but the database is at (no revision), not at the heads of the revision files ['b']"
    )
    assert upgrade_mismatch(None, ["b"]).startswith("exited 0 but the database has no alembic_version table")


class SilentUpgrade(Runner):
    """The real stack for every command but `flask db upgrade`, which exits 0 having done nothing."""

    def __init__(self, real: Runner) -> None:
        super().__init__(real.stack, real.timeout)
        self.real = real

    def command(self, argv: list[str], cwd: Path, stdin: str | None = None) -> CommandResult:
        if argv[1:3] == ["db", "upgrade"]:
            return CommandResult(tuple(argv), 0, "", "", 0.0)
        return self.real.command(argv, cwd, stdin)


@pytest.mark.needs_server
def test_a_silent_no_op_upgrade_fails_at_its_step_in_one_line(harness_server, harness_stack):
    scenario = parse_scenario(one_table("silent"), Path("scenarios/silent.yaml"))
    with session_for(harness_server, "fork") as session, session.workspace("silent") as ws:
        run = execute(scenario, SilentUpgrade(session.runner(harness_stack.stack.name)), ws.project(), ws.url)
    revision = run.revision_ids[0]
    assert run.error.splitlines()[0] == (
        "scenarios/silent.yaml:13: step 'owners', command `flask db upgrade`: exited 0 but the database "
        f"is at (no revision), not at the heads of the revision files ['{revision}']"
    ), run.error
    assert run.invariants == []  # the run stopped at that step


def test_lines_printed_in_set_order_are_kept_in_one_order():
    # `flask db current` with two heads prints them in the set order of random ids
    printed = {"first": "x\n<rev2> (head)\n<rev1> (head)\ny", "second": "x\n<rev1> (head)\n<rev2> (head)\ny"}
    assert order_set_runs(printed["first"]) == printed["second"]
    assert order_set_runs(printed["second"]) == printed["second"]
    # lines that differ in more than the revision keep Alembic's order
    history = "<rev1> -> <rev3>, b\n<rev1> -> <rev2>, a"
    assert order_set_runs(history) == history
    # one line per SERIAL column Alembic reflects, in the set order of the tables, and only for
    # those not already reflected through a foreign key: kept as one line, names out
    detected = (
        "INFO  [alembic.ddl.postgresql] Detected sequence named '{0}_id_seq' as owned by integer "
        "column '{0}(id)', assuming SERIAL and omitting"
    )
    one = order_set_runs("\n".join([detected.format("pets"), "INFO  next"]))
    both = order_set_runs("\n".join([detected.format("owners"), detected.format("pets"), "INFO  next"]))
    assert (
        one
        == both
        == "\n".join(
            [
                "INFO  [alembic.ddl.postgresql] Detected sequence named '<sequence>' as owned by integer "
                "column '<table>(<column>)', assuming SERIAL and omitting",
                "INFO  next",
            ]
        )
    )
