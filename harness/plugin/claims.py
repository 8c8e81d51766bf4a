"""The claims as pytest tests: the catalogue -> one test per claim per stack.

Two modes, both judged by `judge`:

- recorded (the default, what ``tox`` runs): a claim's test fails when its verdict or its
  evidence differs from the record in the store (``claims/verdicts/<stack>.yaml``), in either
  direction, so CI goes red the day a release breaks or repairs a claim, or changes what the
  reader sees, while a known, recorded break stays green. One more test per stack,
  ``transcript[<stack>]``, compares every command the probe ran with
  ``claims/transcripts/<stack>.yaml`` and fails on any changed line, with the diff.
  ``--snapshot-update`` records what was observed.
- gate (``--claims-gate``, the main job): broken fails, drifted warns (fails with
  ``--strict-claims``), not checked is skipped with its reason.

The article is probed once per stack per session, through the session's runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import store
from harness.claims.article import Article, ArticleError, load_article
from harness.claims.catalogue import Claim, load_catalogue
from harness.claims.checks import run_check
from harness.claims.probe import Observations, probe, transcript_data
from harness.claims.report import ClaimResult, environment_json, markdown, terminal_table
from harness.judge import (
    ClaimFinding,
    Outcome,
    judge_claim_gate,
    judge_claim_record,
    judge_transcript,
)
from harness.plugin.common import SETTINGS, expand_stacks, failure_text, session_of, translate
from harness.runners import ForkServerError
from harness.server import ServerError
from harness.stacks import StackError

DEFAULT_CLAIMS_STACKS = ["article", "current"]


class ClaimDriftWarning(UserWarning):
    """A claim that still works but no longer as the article words it."""


class ClaimFailed(Exception):
    pass


def add_claims_options(group: Any) -> None:
    group.addoption(
        "--claims-stack",
        action="append",
        default=[],
        metavar="NAME",
        help=f"check the claims on this stack (repeatable; default: {', '.join(DEFAULT_CLAIMS_STACKS)})",
    )
    group.addoption(
        "--claims-gate",
        action="store_true",
        help="judge claims by their verdict (broken fails) instead of by the recorded verdicts",
    )
    group.addoption(
        "--strict-claims", action="store_true", help="with --claims-gate, drifted claims fail too"
    )
    group.addoption(
        "--claims-report",
        metavar="PATH",
        action="append",
        default=[],
        help="write the claims report as Markdown (e.g. for a CI job summary)",
    )


class ClaimsState:
    """The article, and one probe per stack per session, made on first use."""

    def __init__(self, article_path: Path) -> None:
        self.article_path = article_path
        self.results: dict[str, Observations | str] = {}
        self._article: Article | None = None

    @property
    def article(self) -> Article:
        if self._article is None:
            self._article = load_article(self.article_path)
        return self._article

    def probe(self, config: pytest.Config, stack: str) -> Observations:
        article = self.article
        if stack not in self.results:
            try:
                self.results[stack] = probe(session_of(config), stack, article)
            except (StackError, ServerError, ForkServerError) as exc:
                self.results[stack] = str(exc)
        result = self.results[stack]
        if isinstance(result, str):
            raise ClaimFailed(f"cannot probe the article on stack {stack!r}: {result}")
        return result


CLAIMS_STASH = pytest.StashKey[ClaimsState]()


def claim_stacks(config: pytest.Config) -> list[str]:
    return expand_stacks(config, config.getoption("claims_stack"), DEFAULT_CLAIMS_STACKS)


class CatalogueFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        try:
            claims = load_catalogue(self.path)
        except (ValueError, yaml.YAMLError) as exc:
            raise self.CollectError(str(exc)) from None
        items: list[pytest.Item] = []
        for stack in claim_stacks(self.config):
            items += [
                ClaimItem.from_parent(self, name=f"{claim.id}[{stack}]", claim=claim, stack=stack)
                for claim in claims
            ]
            # the gate judges verdicts only; a catalogue with no claim has no probe to record
            if claims and not self.config.getoption("claims_gate"):
                items.append(TranscriptItem.from_parent(self, name=f"transcript[{stack}]", stack=stack))
        return items


class _StackItem(pytest.Item):
    def __init__(self, *, stack: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stack = stack
        # under `pytest -n N --dist loadgroup` a stack's claims share one worker, so one probe
        self.add_marker(pytest.mark.xdist_group(f"claims-{stack}"))

    def observations(self) -> Observations:
        state = self.config.stash[CLAIMS_STASH]
        try:
            return state.probe(self.config, self.stack)
        except ArticleError as exc:
            raise ClaimFailed(str(exc)) from None

    def translate(self, outcome: Outcome) -> None:
        translate(outcome, ClaimFailed, ClaimDriftWarning)

    @property
    def subject(self) -> str:
        """What a failure names first ("claim 'x' on stack 'y'")."""
        raise NotImplementedError

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return f"{self.subject}: {excinfo.value}"
        return failure_text(self.subject, excinfo, super().repr_failure(excinfo, style=style))


class TranscriptItem(_StackItem):
    """Every command the probe ran on one stack, against ``claims/transcripts/<stack>.yaml``."""

    def runtest(self) -> None:
        observed = transcript_data(self.observations())
        path = store.transcript_file(self.path, self.stack)
        if self.config.getoption("snapshot_update"):
            if store.write_file(observed, path):
                self.user_properties.append(("snapshot_written", str(path)))
            return
        try:
            comparison = store.compare_file(observed, path)
        except store.SnapshotError as exc:
            raise ClaimFailed(str(exc)) from None
        self.translate(judge_transcript(comparison, self.stack))

    @property
    def subject(self) -> str:
        return f"claims transcript on stack {self.stack!r}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"claims transcript [{self.stack}]"


class ClaimItem(_StackItem):
    def __init__(self, *, claim: Claim, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim

    def runtest(self) -> None:
        state = self.config.stash[CLAIMS_STASH]
        obs = self.observations()
        verdict = run_check(self.claim.check, obs, state.article)
        result = ClaimResult(
            claim=self.claim.id,
            section=self.claim.section,
            paraphrase=self.claim.claim,
            stack=self.stack,
            verdict=verdict.verdict,
            observed=verdict.observed,
            article=verdict.article,
            reason=verdict.reason,
            environment=environment_json(obs.versions, obs.python, obs.server),
        )
        self.user_properties.extend(result.as_properties())
        finding = ClaimFinding(
            f"{self.claim.id} [{self.stack}]",
            verdict.verdict,
            verdict.observed,
            verdict.article,
            verdict.reason,
            verdict.details,
        )
        path = store.records_file(self.path, self.stack)
        if self.config.getoption("claims_gate"):
            outcome = judge_claim_gate(finding, strict=self.config.getoption("strict_claims"))
        elif self.config.getoption("snapshot_update"):
            if store.write_record(finding.record, path, self.claim.id):
                self.user_properties.append(
                    ("snapshot_written", f"{path} ({self.claim.id}: {verdict.verdict})")
                )
            return
        else:
            try:
                comparison = store.compare_record(finding.record, path, self.claim.id)
            except store.SnapshotError as exc:
                raise ClaimFailed(str(exc)) from None
            outcome = judge_claim_record(finding, comparison, self.claim.id)
        self.translate(outcome)

    @property
    def subject(self) -> str:
        return f"claim {self.claim.id!r} on stack {self.stack!r}"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"claim {self.claim.id} [{self.stack}]"


def claims_summary(terminalreporter: Any, config: pytest.Config, props: list[list[tuple[str, Any]]]) -> None:
    """The claims report: a table in the terminal, Markdown where --claims-report says."""
    results = [r for r in (ClaimResult.from_properties(p) for p in props) if r is not None]
    if not results:
        return
    state = config.stash[CLAIMS_STASH]
    # keep the catalogue's order and the stacks' order whatever order the tests ran in

    catalogue = config.stash[SETTINGS].catalogue
    order = {c.id: i for i, c in enumerate(load_catalogue(catalogue))} if catalogue.exists() else {}
    stacks = claim_stacks(config)
    results.sort(
        key=lambda r: (order.get(r.claim, len(order)), stacks.index(r.stack) if r.stack in stacks else 99)
    )
    terminalreporter.section("claims report")
    terminalreporter.write(terminal_table(results, width=max(terminalreporter._tw.fullwidth, 100)))
    for path in config.getoption("claims_report"):
        try:
            name = state.article.path.name
        except ArticleError:
            name = "the article"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(markdown(results, name), encoding="utf-8")
        terminalreporter.write_line(f"claims report written to {path}")
