"""The verification-power tool (harness/mutants): seeding faults, judging runs, the table and the page
on fakes; and one test on the real stack: the copy is its own, the fault lands in the copy only."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from harness.mutants.envcopy import copy_env, verify_copy
from harness.mutants.faults import (
    FAULTS,
    WOULD_CATCH,
    Fault,
    FaultError,
    by_name,
    check_anchors,
    seed,
    unseed,
)
from harness.mutants.results import (
    CAUGHT,
    MISSED,
    Failure,
    Outcome,
    RunResult,
    dump,
    failures,
    judge_run,
    load,
    markdown,
    print_table,
    summary,
)
from harness.stacks import ENV_OVERRIDE, ensure_env

CODE = "def compare(a, b):\n    if a is not b:\n        return True\n    return False\n"
FAULT = Fault(
    "skip",
    "pkg/mod.py",
    "    if a is not b:\n",
    "    if False and a is not b:\n",
    "a comparison that never fires",
)


def _site(tmp_path: Path, code: str = CODE) -> Path:
    site = tmp_path / "site-packages"
    (site / "pkg" / "__pycache__").mkdir(parents=True)
    (site / "pkg" / "mod.py").write_text(code)
    (site / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"stale")
    (site / "pkg" / "__pycache__" / "other.cpython-311.pyc").write_bytes(b"kept")
    return site


def test_seed_replaces_the_anchor_and_drops_the_stale_bytecode_unseed_restores(tmp_path: Path) -> None:
    site = _site(tmp_path)
    seeded = seed(FAULT, site)
    text = (site / "pkg" / "mod.py").read_text()
    assert "if False and a is not b:" in text and text.count("if ") == 1
    assert not (site / "pkg" / "__pycache__" / "mod.cpython-311.pyc").exists()
    assert (site / "pkg" / "__pycache__" / "other.cpython-311.pyc").exists()
    unseed(seeded)
    assert (site / "pkg" / "mod.py").read_text() == CODE


@pytest.mark.parametrize(
    ("code", "expected"), [(CODE.replace("is not", "!="), "does not occur"), (CODE + CODE, "occurs 2 times")]
)
def test_an_anchor_not_found_exactly_once_fails_loudly_and_changes_nothing(
    tmp_path: Path, code: str, expected: str
) -> None:
    site = _site(tmp_path, code)
    with pytest.raises(FaultError) as err:
        seed(FAULT, site)
    assert str(err.value).startswith("fault skip: the anchor")
    assert expected in str(err.value) and str(site / "pkg" / "mod.py") in str(err.value)
    assert (site / "pkg" / "mod.py").read_text() == code
    assert check_anchors(site, [FAULT]) == [str(err.value)]


def test_a_replacement_that_breaks_the_syntax_is_refused(tmp_path: Path) -> None:
    site = _site(tmp_path)
    broken = Fault("broken", "pkg/mod.py", "    if a is not b:\n", "    if a is not b\n", "")
    with pytest.raises(FaultError, match="breaks .* syntax"):
        seed(broken, site)
    assert (site / "pkg" / "mod.py").read_text() == CODE


def test_faults_by_name() -> None:
    assert [f.name for f in by_name(["render-nullable-dropped", "compare-type-skipped"])] == [
        "compare-type-skipped",
        "render-nullable-dropped",
    ]
    assert by_name([]) == list(FAULTS)
    with pytest.raises(FaultError, match="unknown fault"):
        by_name(["no-such-fault"])


def test_the_catalogue_has_twenty_distinct_faults_across_the_four_libraries() -> None:
    names = [f.name for f in FAULTS]
    assert len(names) >= 20 and len(set(names)) == len(names)
    assert all(f.old != f.new and f.why for f in FAULTS)
    tops = {f.path.split("/")[0] for f in FAULTS}
    assert {"alembic", "flask_migrate", "flask", "flask_sqlalchemy"} <= tops
    assert set(WOULD_CATCH) <= set(names)


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3">
<testcase classname="claims.catalogue.yaml" name="install_line[current]" time="1"/>
<testcase classname="scenarios.columns.add_column.yaml" name="add_column[current]" time="1">
  <failure message="scenarios/columns/add_column.yaml [current]: the snapshot differs&#10;detail">x</failure>
</testcase>
<testcase classname="claims.catalogue.yaml" name="init_tree[current]" time="1">
  <error message="">
claim 'init_tree' on stack 'current':
error at setup
more</error></testcase>
<testcase classname="scenarios.article.article.yaml" name="article[current]" time="1">
  <failure message="scenario 'article' on stack 'current':&#10;[+65 more lines; full report in element text]">
E   Failed: scenario 'article' on stack 'current':
E   invariant 'autogenerate_clean' failed
E   more</failure></testcase>
</testsuite></testsuites>"""


def test_failures_in_junit_order_with_their_first_line() -> None:
    assert failures(JUNIT) == [
        Failure(
            "scenarios/columns/add_column.yaml::add_column[current]",
            "scenarios/columns/add_column.yaml [current]: the snapshot differs",
        ),
        Failure(
            "claims/catalogue.yaml::init_tree[current]",
            "claim 'init_tree' on stack 'current': error at setup",
        ),
        Failure(  # pytest shortened the message: the line it introduces is in the element text
            "scenarios/article/article.yaml::article[current]",
            "scenario 'article' on stack 'current': invariant 'autogenerate_clean' failed",
        ),
    ]


def test_judge_run_caught_missed_and_a_failing_session_without_a_failing_test() -> None:
    caught = judge_run("f", RunResult(1, JUNIT, seconds=3.0), "why")
    assert caught.status == CAUGHT and caught.failures == 3
    assert caught.failure is not None and caught.failure.test.endswith("add_column[current]")
    passing = JUNIT.replace("<failure", "<skipped").replace("</failure>", "</skipped>")
    passing = passing.replace("<error", "<skipped").replace("</error>", "</skipped>")
    assert judge_run("f", RunResult(0, passing)).status == MISSED
    session = judge_run("f", RunResult(1, passing, output_tail="...\n1 unused: no scenario owns them"))
    assert session.status == CAUGHT and session.failure == Failure(
        "(session)", "exit code 1: 1 unused: no scenario owns them"
    )


def test_the_table_and_the_page_show_every_fault_and_what_would_catch_each_missed_one() -> None:
    outcomes = [
        Outcome(
            "a-fault", CAUGHT, Failure("claims/catalogue.yaml::x[current]", "claim 'x': a | b"), 1, 2.0, "w1"
        ),
        Outcome("b-fault", MISSED, why="w2", would_catch="a transcript snapshot"),
    ]
    assert summary(outcomes) == "1 of 2 faults caught (50%)"
    page = markdown(outcomes, "# Verification power\n\nintro")
    assert "| `a-fault` | caught | claims/catalogue.yaml::x[current] | claim 'x': a \\| b |" in page
    assert "| `b-fault` | missed | - |  |" in page
    assert "- `b-fault` (w2): a transcript snapshot" in page
    assert load(dump(outcomes, "intro")) == (outcomes, "intro")  # what --render reads back
    console = Console(record=True, width=160)
    print_table(outcomes, console)
    text = console.export_text()
    assert "a-fault" in text and "missed" in text and "1 of 2 faults caught (50%)" in text


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_copy_is_its_own_and_a_fault_lands_in_the_copy_only(
    harness_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real current stack: copy it, seed one fault, and show the copy's interpreter runs the
    changed file while the cached environment (hard-linked to uv's cache) keeps its bytes."""
    src = harness_stack.path
    copy = tmp_path / "env"
    copy_env(src, copy)
    check = verify_copy(copy, src)  # prefix and libraries under the copy, scripts run its python
    assert Path(check.prefix) == copy and all(Path(f).is_relative_to(copy) for f in check.files.values())
    site = Path(check.files["alembic"]).parent.parent
    fault = by_name(["compare-nullable-skipped"])[0]
    original = Path(
        str(site / fault.path).replace(str(copy), str(src), 1)
    )  # the same file in the cached environment
    before = _digest(original)
    seeded = seed(fault, site)
    try:
        assert os.stat(seeded.file).st_ino != os.stat(original).st_ino
        probe = "import inspect, alembic.autogenerate.compare.constraints as c; print(inspect.getsource(c))"
        out = subprocess.run(
            [str(copy / "bin" / "python"), "-c", probe], capture_output=True, text=True, check=True
        )
        assert fault.new in out.stdout and fault.old not in out.stdout
        assert _digest(original) == before and fault.old in original.read_text()
        monkeypatch.setenv(ENV_OVERRIDE, f"{harness_stack.stack.name}={copy}")
        env = ensure_env(harness_stack.stack)  # the one hook: the stack now names the copy
        assert env.path == copy and env.versions == harness_stack.versions
    finally:
        unseed(seeded)
    assert _digest(seeded.file) == before


def test_each_run_orders_claims_and_scenarios_by_where_the_fault_is() -> None:
    from harness.mutants.__main__ import SUBSET, claims_first, pytest_argv

    argv = pytest_argv("current", "subset", Path("j.xml"), 1, True, claims_first=False)
    assert argv[3 : 4 + len(SUBSET)] == [*SUBSET, "claims"] and "-x" in argv and "-n" not in argv
    argv = pytest_argv("current", "full", Path("j.xml"), 2, False)
    assert argv[3:5] == ["claims", "scenarios"] and "-x" not in argv and argv[-4:-2] == ["-n", "2"]
    assert not claims_first(by_name(["render-nullable-dropped"])[0])
    assert claims_first(by_name(["flask-flaskenv-not-loaded"])[0])
