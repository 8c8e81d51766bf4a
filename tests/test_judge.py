"""The verdict rules, on plain data: no server, no stack, no pytest item."""

from __future__ import annotations

from pathlib import Path

from harness.judge import (
    FAIL,
    PASS,
    SKIP,
    XFAIL,
    ClaimFinding,
    before_run,
    judge_claim_gate,
    judge_claim_record,
    judge_scenario,
    judge_transcript,
)
from harness.records import InvariantResult, ScenarioRun
from harness.scenario import Scenario
from harness.stacks import Stack, StackEnv
from harness.store import Comparison

ENV = StackEnv(stack=Stack("current", "", ()), path=Path("/venv"), versions={}, python_version="3")
SNAP = Path("scenarios/__snapshots__/s.yaml")
OBSERVED = {"scenario": "s", "steps": []}


def scenario(**fields) -> Scenario:
    return Scenario(id="s", title="t", path=Path("scenarios/s.yaml"), steps=(), **fields)


def run(error: str | None = None, invariants: tuple[InvariantResult, ...] = (), **fields) -> ScenarioRun:
    return ScenarioRun(scenario=scenario(**fields), stack=ENV, error=error, invariants=list(invariants))


MATCH = Comparison(path=SNAP, exists=True, diff="")
DIFF = Comparison(path=SNAP, exists=True, diff="-a\n+b\n", expected={"steps": []})
MISSING = Comparison(path=SNAP, exists=False, diff="")


def test_a_clean_run_that_matches_its_snapshot_passes():
    assert judge_scenario(run(), "current", OBSERVED, MATCH).status == PASS


def test_a_missing_or_differing_snapshot_fails_saying_what_to_run():
    missing = judge_scenario(run(), "current", OBSERVED, MISSING)
    assert missing.status == FAIL and missing.headline.startswith(f"no snapshot {SNAP}; run `tox -e update")
    differs = judge_scenario(run(), "current", OBSERVED, DIFF)
    assert (
        differs.status == FAIL
        and differs.headline == f"observations differ from {SNAP} (- expected, + observed):"
    )


def test_a_run_that_stopped_reports_its_error_first_and_no_diff():
    outcome = judge_scenario(
        run(error="scenarios/s.yaml:3: step 'x': failed unexpectedly: boom"), "current", OBSERVED, DIFF
    )
    assert outcome.status == FAIL
    assert outcome.reasons == ("scenarios/s.yaml:3: step 'x': failed unexpectedly: boom",)


def test_an_unlisted_invariant_failure_fails_a_listed_one_passes_and_one_that_now_holds_fails():
    broken = InvariantResult("roundtrip", ok=False, detail="left at base: table t")
    assert judge_scenario(run(invariants=(broken,)), "current", OBSERVED, MATCH).reasons == (
        "invariant 'roundtrip' failed: left at base: table t",
    )
    known = InvariantResult("roundtrip", ok=False, detail="...", known="enum outlives its table")
    assert judge_scenario(run(invariants=(known,)), "current", OBSERVED, MATCH).status == PASS
    healed = InvariantResult("roundtrip", ok=True, known="enum outlives its table")
    outcome = judge_scenario(run(invariants=(healed,)), "current", OBSERVED, MATCH)
    assert outcome.status == FAIL
    assert (
        outcome.headline
        == "scenarios/s.yaml: known_failures lists 'roundtrip' (enum outlives its table), but it now holds."
    )


def test_broken_on_turns_a_failure_into_xfail_and_a_pass_into_a_failure():
    fields = {"broken_on": {"era2020": "batch ops fail on alembic 1.4"}}
    xfail = judge_scenario(run(error="boom", **fields), "era2020", OBSERVED, None)
    assert (
        xfail.status == XFAIL
        and xfail.headline == "known break on era2020: batch ops fail on alembic 1.4 (boom)"
    )
    fixed = judge_scenario(run(**fields), "era2020", OBSERVED, MATCH)
    assert fixed.status == FAIL and "broken_on lists stack 'era2020'" in fixed.headline
    assert judge_scenario(run(**fields), "current", OBSERVED, MATCH).status == PASS


def test_updating_judges_the_run_but_not_the_snapshot():
    assert judge_scenario(run(), "current", OBSERVED, None).status == PASS


def test_unmet_requirements_skip_before_the_run():
    needs = scenario(requires={"alembic": ">=1.12"})
    skipped = before_run(needs, "era2020", {"alembic": "1.4.3"})
    assert skipped is not None and skipped.status == SKIP
    assert (
        skipped.headline
        == "stack 'era2020' lacks what the scenario requires: alembic>=1.12 (installed: 1.4.3)"
    )
    assert before_run(needs, "current", {"Alembic": "1.20.1"}) is None


def finding(verdict: str) -> ClaimFinding:
    return ClaimFinding("install_line [article]", verdict, "observed text", "article text", "the reason")


def test_the_gate_fails_broken_warns_drifted_skips_not_checked():
    assert judge_claim_gate(finding("holds")).status == PASS
    assert judge_claim_gate(finding("broken")).headline == "broken"
    drifted = judge_claim_gate(finding("drifted"))
    assert drifted.status == PASS and drifted.warnings == ("install_line [article] drifted: observed text",)
    assert judge_claim_gate(finding("drifted"), strict=True).status == FAIL
    skipped = judge_claim_gate(finding("not checked"))
    assert skipped.status == SKIP and skipped.headline == "not checked: the reason: observed text"


def test_the_record_fails_on_any_change_either_way():
    path = Path("claims/verdicts/current.yaml")
    same = Comparison(path=path, exists=True, diff="", expected=finding("broken").record)
    assert judge_claim_record(finding("broken"), same, "install_line").status == PASS
    better = Comparison(path=path, exists=True, diff="x", expected=finding("broken").record)
    changed = judge_claim_record(finding("holds"), better, "install_line")
    assert (
        changed.status == FAIL and changed.headline == "verdict changed: recorded 'broken', observed 'holds'"
    )
    absent = judge_claim_record(
        finding("holds"), Comparison(path=path, exists=False, diff=""), "install_line"
    )
    assert absent.status == FAIL and absent.headline.startswith(f"no recorded verdict in {path}")
    bogus = Comparison(path=path, exists=True, diff="x", expected={"verdict": "fine"})
    assert (
        "the record has no verdict with its evidence"
        in judge_claim_record(finding("holds"), bogus, "k").headline
    )
    # a record of the verdict word alone (the old format) is not evidence
    bare = Comparison(path=path, exists=True, diff="x", expected="holds")
    assert judge_claim_record(finding("holds"), bare, "install_line").status == FAIL


def test_a_changed_evidence_under_the_same_verdict_fails_with_the_diff():
    path = Path("claims/verdicts/current.yaml")
    diff = "-  observed: old text\n+  observed: observed text\n"
    moved = Comparison(path=path, exists=True, diff=diff, expected={"verdict": "drifted", "observed": "old"})
    outcome = judge_claim_record(finding("drifted"), moved, "install_line")
    assert outcome.status == FAIL
    assert outcome.headline == "evidence changed under the same verdict ('drifted') (- recorded, + observed):"
    assert diff in outcome.message


def test_the_record_keeps_verdict_evidence_and_reason_but_not_the_articles_words():
    found = ClaimFinding("x [s]", "drifted", "seen", "the article's words", "why", {"extra": ["a"]})
    assert found.record == {
        "verdict": "drifted",
        "observed": "seen",
        "why": "why",
        "evidence": {"extra": ["a"]},
    }
    assert ClaimFinding("x [s]", "holds", "seen", "said").record == {"verdict": "holds", "observed": "seen"}


def test_a_changed_transcript_line_fails_with_the_diff_and_a_missing_one_says_what_to_run():
    path = Path("claims/transcripts/current.yaml")
    assert judge_transcript(Comparison(path=path, exists=True, diff=""), "current").status == PASS
    diff = "+  stderr: |\n+    one extra line\n"
    changed = judge_transcript(Comparison(path=path, exists=True, diff=diff), "current")
    assert changed.status == FAIL and "+    one extra line" in changed.message
    assert changed.headline == (
        f"the transcript of the article's commands on 'current' changed (- {path}, + observed):"
    )
    missing = judge_transcript(Comparison(path=path, exists=False, diff=""), "current")
    assert missing.status == FAIL and "--snapshot-update" in missing.headline
