"""The verdict rules, in one place: from what was observed to pass, fail, xfail or skip.

Pure functions of plain data: a scenario's run, its observation and its snapshot comparison; a
claim's verdict and its record. No server, no pytest. The pytest items and the command-line
tools only translate an `Outcome`, so ``show`` and ``pytest`` can never disagree.

Every reason starts with one line that says what went wrong; the detail follows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import SpecifierSet

from harness.observe.commands import truncation_note
from harness.records import CommandRecord, ScenarioRun
from harness.runners.base import error_line
from harness.scenario import Scenario
from harness.store import Comparison

PASS, FAIL, XFAIL, SKIP = "pass", "fail", "xfail", "skip"
HOLDS, DRIFTED, BROKEN, NOT_CHECKED = "holds", "drifted", "broken", "not checked"
VERDICTS = (HOLDS, DRIFTED, BROKEN, NOT_CHECKED)


@dataclass(frozen=True)
class Outcome:
    status: str  # PASS, FAIL, XFAIL or SKIP
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # a pass that deserves a word (a drifted claim in gate mode)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def headline(self) -> str:
        """The first line of the first reason: what went wrong, in one line."""
        return self.reasons[0].splitlines()[0] if self.reasons else ""

    @property
    def message(self) -> str:
        return "\n\n".join(self.reasons)


# -- scenarios ---------------------------------------------------------------------------------


def unmet_requirements(requires: dict[str, str], versions: dict[str, str]) -> list[str]:
    """The scenario's `requires` entries the stack's installed versions do not satisfy."""
    installed = {name.lower().replace("_", "-"): version for name, version in versions.items()}
    unmet = []
    for name, spec in requires.items():
        version = installed.get(name.replace("_", "-"))
        if version is None or not SpecifierSet(spec).contains(version, prereleases=True):
            unmet.append(f"{name}{spec} (installed: {version or 'none'})")
    return unmet


def before_run(scenario: Scenario, stack: str, versions: dict[str, str]) -> Outcome | None:
    """A skip when the stack cannot run the scenario at all; None when it should run."""
    missing = unmet_requirements(scenario.requires, versions)
    if missing:
        return Outcome(SKIP, (f"stack {stack!r} lacks what the scenario requires: {'; '.join(missing)}",))
    return None


def _ops(step: dict[str, Any]) -> list[str]:
    revisions = (step.get("migration") or {}).get("revisions") or []
    return [
        " ".join(str(op[k]) for k in ("op", "table", "column") if k in op)
        for rev in revisions
        for op in rev.get("upgrade_ops") or []
    ]


def lost_changes(expected: Any, observed: dict[str, Any]) -> list[str]:
    """Steps whose migrate found no change although the snapshot expects operations.

    A scenario says it expects operations through its snapshot. When autogenerate finds nothing
    (the models were not changed, or a step lost its ``models``), the diff is a wall of ``-``
    lines; this says it in one sentence per step, ahead of the diff.
    """
    if not isinstance(expected, dict):
        return []
    before = {s.get("name"): s for s in expected.get("steps") or [] if isinstance(s, dict)}
    out = []
    for step in observed.get("steps", []):
        wanted = _ops(before.get(step["name"], {}))
        if wanted and "migration" in step and not _ops(step):
            out.append(
                f"step {step['name']!r}: `flask db migrate` found no change, but the snapshot expects "
                f"{len(wanted)} operation(s): {'; '.join(wanted)}. Did the step's models change? "
                "(a step without `models` keeps the previous step's)"
            )
    return out


def _error_headline(record: CommandRecord) -> str:
    if record.result is not None:
        return error_line(record.result.output)
    return (record.sql_error or "").strip().splitlines()[0] if record.sql_error else ""


def failure_mismatches(run: ScenarioRun) -> list[str]:
    """Expected failures that failed for another reason than the scenario's `match:` says.

    A command marked `expect: failure` that fails for any reason would otherwise pass: a typo in the
    models fails the upgrade as surely as the pitfall the scenario shows. `match` pins the reason.
    """
    out = []
    for step in run.steps:
        for record in step.commands:
            command = record.command
            failed = record.sql_error is not None or (record.result is not None and not record.result.ok)
            if not (command.expect_failure and command.match and failed):
                continue
            headline = _error_headline(record)
            if re.search(command.match, headline):
                continue
            why = f" ({command.why})" if command.why else ""
            out.append(
                f"{run.scenario.path}:{command.line}: step {step.step.name!r}, command `{command.label}` "
                f"failed, but not as expected{why}: its error line does not match `{command.match}`: "
                f"{headline}\nWhat to do: if the failure is still the one the scenario shows, widen `match`; "
                "otherwise fix what now makes the command fail."
            )
    return out


def run_warnings(run: ScenarioRun) -> list[str]:
    """What deserves a word although it does not fail the scenario: query results cut short."""
    return [
        f"{run.scenario.path}:{r.command.line}: `{r.command.label}`: "
        + truncation_note(len(r.rows or []), r.rows_total)
        for step in run.steps
        for r in step.commands
        if r.rows_total is not None
    ]


def run_problems(run: ScenarioRun) -> list[str]:
    """What went wrong in the run itself, whatever the snapshot says."""
    scenario = run.scenario
    problems = [run.error] if run.error else []
    problems += failure_mismatches(run)
    for inv in run.invariants:
        if not inv.ok and not inv.known:
            problems.append(f"invariant {inv.name!r} failed: {inv.detail}")
        if inv.ok and inv.known:
            problems.append(
                f"{scenario.path}: known_failures lists {inv.name!r} ({inv.known}), but it now holds.\n"
                f"What to do: remove {inv.name!r} from known_failures and update the snapshot."
            )
    return problems


def snapshot_problems(comparison: Comparison, observed: dict[str, Any], scenario: Scenario) -> list[str]:
    """What differs between the observation and its snapshot."""
    if not comparison.exists:
        return [
            f"no snapshot {comparison.path}; run `tox -e update -- {scenario.path}` "
            "(pytest --snapshot-update), then review the file it writes."
        ]
    if not comparison.diff:
        return []
    return [
        *lost_changes(comparison.expected, observed),
        f"observations differ from {comparison.path} (- expected, + observed):\n{comparison.diff}"
        "If the change is intended, run with --snapshot-update and review the diff.",
    ]


def judge_scenario(
    run: ScenarioRun, stack: str, observed: dict[str, Any], comparison: Comparison | None
) -> Outcome:
    """The outcome of one scenario on one stack. `comparison` is None when the snapshot was being
    written instead of compared (--snapshot-update)."""
    problems = run_problems(run)
    # a run that stopped early has its error as the story: a snapshot diff would be noise
    if run.error is None and comparison is not None:
        problems += snapshot_problems(comparison, observed, run.scenario)
    broken = run.scenario.broken_on.get(stack)
    if broken and problems:
        return Outcome(XFAIL, (f"known break on {stack}: {broken} ({problems[0].splitlines()[0]})",))
    if broken:
        problems.append(
            f"broken_on lists stack {stack!r} ({broken}), but the scenario now passes there.\n"
            f"What to do: remove {stack!r} from broken_on and record its snapshot."
        )
    warnings = tuple(run_warnings(run))
    return Outcome(FAIL, tuple(problems), warnings) if problems else Outcome(PASS, warnings=warnings)


# -- claims ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimFinding:
    """A claim's verdict on one stack with its evidence (what `claims.checks` produces)."""

    label: str  # "claim_id [stack]"
    verdict: str
    observed: str
    article: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # the check's evidence, as plain data

    @property
    def evidence(self) -> str:
        why = f"\nwhy: {self.reason}" if self.reason else ""
        return f"article says:\n{self.article}\nobserved:\n{self.observed}{why}"

    @property
    def record(self) -> dict[str, Any]:
        """What is kept on record (``claims/verdicts/<stack>.yaml``): the verdict and its
        normalised evidence, so that a change of evidence shows as a diff even when the verdict
        stays. The article's words are not recorded: they are the article's, not an observation."""
        out: dict[str, Any] = {"verdict": self.verdict, "observed": self.observed}
        if self.reason:
            out["why"] = self.reason
        if self.details:
            out["evidence"] = self.details
        return out


def judge_claim_gate(finding: ClaimFinding, strict: bool = False) -> Outcome:
    """The main job's rule: broken fails, drifted warns (fails when strict), not checked skips."""
    if finding.verdict == BROKEN:
        return Outcome(FAIL, (f"broken\n{finding.evidence}",))
    if finding.verdict == DRIFTED and strict:
        return Outcome(FAIL, (f"drifted (--strict-claims)\n{finding.evidence}",))
    if finding.verdict == DRIFTED:
        return Outcome(PASS, warnings=(f"{finding.label} drifted: {finding.observed}",))
    if finding.verdict == NOT_CHECKED:
        return Outcome(SKIP, (f"not checked: {finding.reason}: {finding.observed}",))
    return Outcome(PASS)


def judge_repaired_article(
    verdicts: dict[str, str], error: str | None = None, blocking: bool = True
) -> Outcome:
    """The repaired article's rule: it verifies only when every claim holds on today's releases.
    In the main job (not `blocking`) a repaired article that does not verify is an expected
    failure: the job's exit code is the article as written's alone."""
    status = FAIL if blocking else XFAIL
    if error:
        return Outcome(status, (f"the repaired article could not be followed: {error}",))
    short = {claim: v for claim, v in verdicts.items() if v != HOLDS}
    if short:
        listed = "; ".join(f"{claim}: {v}" for claim, v in short.items())
        return Outcome(
            status, (f"the repaired article does not verify: {len(short)} claim(s) do not hold: {listed}",)
        )
    return Outcome(PASS)


def judge_repair_record(comparison: Comparison, applies: bool) -> Outcome:
    """The recorded repair (``claims/repair.yaml``) against what the main job proved: when the
    record is for this text of the article, any change (an edit, a verdict count) fails, like a
    snapshot; with none, or one for another text, the repair was searched and nothing is compared."""
    update = "run with --snapshot-update to record what was proven, then review the file."
    if not comparison.exists or not applies:
        why = "there is none" if not comparison.exists else "it is for another text of the article"
        return Outcome(SKIP, (f"no recorded repair to compare ({comparison.path}: {why}); {update}",))
    if comparison.diff:
        return Outcome(
            FAIL,
            (
                f"the recorded repair no longer holds as recorded (- {comparison.path}, + proven "
                f"today):\n{comparison.diff}If the change is real, {update}",
            ),
        )
    return Outcome(PASS)


def judge_repair_column(finding: ClaimFinding) -> Outcome:
    """A claim on the article with the repair: the gate's rule, except that a broken claim is an
    expected failure (xfail), so the main job's exit code stays that of the article as written."""
    outcome = judge_claim_gate(finding)
    return Outcome(XFAIL, outcome.reasons, outcome.warnings) if outcome.failed else outcome


def judge_claim_record(finding: ClaimFinding, comparison: Comparison, key: str) -> Outcome:
    """The recorded rule (what ``tox`` runs): any change from the record fails, either way: a
    changed verdict, and a changed evidence under the same verdict (with the diff)."""
    verdict, evidence = finding.verdict, finding.evidence
    update = "run with --snapshot-update to record it, then review the file."
    if not comparison.exists:
        return Outcome(FAIL, (f"no recorded verdict in {comparison.path} (observed: {verdict}); {update}",))
    expected = comparison.expected
    recorded = expected.get("verdict") if isinstance(expected, dict) else None
    if recorded not in VERDICTS:
        return Outcome(
            FAIL,
            (
                f"{comparison.path}: {key}: the record has no verdict with its evidence "
                f"(found {expected!r}; a verdict is one of {VERDICTS}); {update}",
            ),
        )
    if recorded != verdict:
        return Outcome(
            FAIL,
            (
                f"verdict changed: recorded {recorded!r}, observed {verdict!r}\n{evidence}\n"
                f"(- recorded, + observed):\n{comparison.diff}"
                "If the change is real, record it with --snapshot-update, and update the article or its "
                "docs.",
            ),
        )
    if comparison.diff:
        return Outcome(
            FAIL,
            (
                f"evidence changed under the same verdict ({verdict!r}) "
                f"(- recorded, + observed):\n{comparison.diff}"
                "If the change is real, record it with --snapshot-update and review the diff.",
            ),
        )
    return Outcome(PASS)


def judge_transcript(comparison: Comparison, stack: str) -> Outcome:
    """A stack's claims transcript: any changed line fails, with the diff, whatever the verdicts."""
    if not comparison.exists:
        return Outcome(
            FAIL,
            (
                f"no recorded transcript {comparison.path} for stack {stack!r}; run with "
                "--snapshot-update to record it, then read the file.",
            ),
        )
    if comparison.diff:
        return Outcome(
            FAIL,
            (
                f"the transcript of the article's commands on {stack!r} changed "
                f"(- {comparison.path}, + observed):\n{comparison.diff}"
                "If the change is real, run with --snapshot-update and review the diff.",
            ),
        )
    return Outcome(PASS)
