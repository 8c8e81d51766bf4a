"""The main job's second column: the article with its smallest proven repair, and the repaired article.

With ``--claims-repair``, every claim collected from the catalogue gets a twin item judged on the
article with the repair (`harness.claims.repair`), and one more item, ``repaired_article``, fails
unless the repaired article (`harness.claims.rewrite`) verifies: every claim holds. The search,
the rewrite and the verification run once per session, on first use. The report gains the column
(the items' ClaimResults carry it) and a section stating the repair as edits of the article's text.
Pass/fail comes from `judge`; nothing is decided here.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.claims.article import ArticleError
from harness.claims.catalogue import Claim, load_catalogue
from harness.claims.repair import Prover, Trial, apply_edits, describe, find_repair, line_stack
from harness.claims.report import ClaimResult, environment_json, repair_markdown, repair_terminal
from harness.claims.rewrite import Rewrite, Written, rewrite, unified_diff, write_repaired
from harness.judge import SKIP, VERDICTS, XFAIL, ClaimFinding, judge_repair_column, judge_repaired_article
from harness.plugin.claims import CLAIMS_STASH, ClaimDriftWarning, ClaimFailed, ClaimItem
from harness.plugin.common import SETTINGS, call_properties, session_of

REPAIR_COLUMN = "with the repair"
SUMMARY_KEY = "repair_summary"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("migrate-harness")
    group.addoption(
        "--claims-repair",
        action="store_true",
        help="search the smallest edit of the article's text that makes its steps work today, judge "
        "the claims on it too (a second column), and verify the repaired article",
    )
    group.addoption(
        "--repair-dir",
        default="reports",
        metavar="DIR",
        help="where the repaired article and its diff are written (default: reports)",
    )


@dataclass
class RepairResult:
    base: Trial
    best: Trial
    tried: list[Trial]
    rewrite: Rewrite
    verified: Trial
    written: Written | None
    diff: str


class RepairState:
    """The search, the rewrite and the verification, made once on first use."""

    def __init__(self) -> None:
        self.result: RepairResult | str | None = None

    def get(self, config: pytest.Config) -> RepairResult:
        if self.result is None:
            try:
                self.result = _run(config)
            except (ClaimFailed, ArticleError) as exc:
                self.result = str(exc)
        if isinstance(self.result, str):
            raise ClaimFailed(f"no repair could be searched: {self.result}")
        return self.result


REPAIR_STASH = pytest.StashKey[RepairState]()


def _run(config: pytest.Config) -> RepairResult:
    claims = config.stash[CLAIMS_STASH]
    article = claims.article
    session = session_of(config)
    prover = Prover(session, article, load_catalogue(config.stash[SETTINGS].catalogue))
    # the article as written, on a stack made from its own install line (the `article` stack of
    # stacks.toml when the line is unchanged, so the first column's probe is reused)
    obs = claims.probe(config, line_stack(session, article.install_packages))
    base = Trial((), prover.verdicts(obs, article), obs, article)
    best, tried = find_repair(prover, base)
    changes = rewrite(best)
    verified = prover.trial(best.candidates + tuple(changes.candidates))
    written, diff = None, ""
    if verified.error is None:
        text = apply_edits(article.text, verified.edits)
        diff = unified_diff(article.text, text, article.path.name)
        folder = Path(config.getoption("repair_dir"))
        folder = folder if folder.is_absolute() else config.invocation_params.dir / folder
        written = write_repaired(folder, article.path.name, article.text, text)
    return RepairResult(base, best, tried, changes, verified, written, diff)


def _counts(trial: Trial) -> dict[str, int]:
    return {v: trial.count(v) for v in VERDICTS if trial.count(v)}


def summary(result: RepairResult, root: Path) -> dict[str, Any]:
    """Everything the report says about the repair, as plain JSON-able values."""

    def rel(path: Path | None) -> str:
        if path is None:
            return "(not written)"
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    written = result.written
    return {
        "repair": describe(result.best),
        "repair_size": result.best.size,
        "tried": [
            {"changes": [c.name for c in t.candidates], "counts": _counts(t), "error": t.error}
            for t in [result.base, *result.tried]
        ],
        "rewrite": describe(Trial(tuple(result.rewrite.candidates))),
        "left_as_is": result.rewrite.left_as_is,
        "repaired_counts": _counts(result.verified),
        "repaired_verdicts": {k: v.verdict for k, v in result.verified.verdicts.items()},
        "verifies": not judge_repaired_article(
            {k: v.verdict for k, v in result.verified.verdicts.items()}, result.verified.error
        ).failed,
        "text_path": rel(written.text_path if written else None),
        "diff_path": rel(written.diff_path if written else None),
        "added": written.added if written else 0,
        "removed": written.removed if written else 0,
        "diff": result.diff,
    }


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPAIR_STASH] = RepairState()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[Any]) -> None:
    if not config.getoption("claims_repair"):
        return
    first: dict[str, ClaimItem] = {}
    for item in items:
        if isinstance(item, ClaimItem):
            first.setdefault(item.claim.id, item)
    for claim_id, item in first.items():
        items.append(
            RepairClaimItem.from_parent(item.parent, name=f"{claim_id}[with-repair]", claim=item.claim)
        )
    if first:
        parent = next(iter(first.values())).parent
        items.append(RepairedArticleItem.from_parent(parent, name="repaired_article"))


class RepairClaimItem(pytest.Item):
    """One claim judged on the article with the repair (the report's second column)."""

    def __init__(self, *, claim: Claim, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim

    def runtest(self) -> None:
        result = self.config.stash[REPAIR_STASH].get(self.config)
        trial = result.best
        if trial.error or trial.observations is None:
            raise ClaimFailed(f"the repaired text could not be followed: {trial.error}")
        verdict = trial.verdicts[self.claim.id]
        obs = trial.observations
        self.user_properties.extend(
            ClaimResult(
                claim=self.claim.id,
                section=self.claim.section,
                paraphrase=self.claim.claim,
                stack=REPAIR_COLUMN,
                verdict=verdict.verdict,
                observed=verdict.observed,
                article=verdict.article,
                reason=verdict.reason,
                environment=environment_json(obs.versions, obs.python, obs.server),
            ).as_properties()
        )
        finding = ClaimFinding(
            f"{self.claim.id} [{REPAIR_COLUMN}]",
            verdict.verdict,
            verdict.observed,
            verdict.article,
            verdict.reason,
        )
        outcome = judge_repair_column(finding)
        for warning in outcome.warnings:
            warnings.warn(ClaimDriftWarning(warning), stacklevel=1)
        if outcome.status == SKIP:
            pytest.skip(outcome.message)
        if outcome.status == XFAIL:
            pytest.xfail(outcome.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return f"claim {self.claim.id!r} {REPAIR_COLUMN}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"claim {self.claim.id} [{REPAIR_COLUMN}]"


class RepairedArticleItem(pytest.Item):
    """Fails unless the repaired article verifies: every claim holds on today's releases."""

    def runtest(self) -> None:
        result = self.config.stash[REPAIR_STASH].get(self.config)
        self.user_properties.append(
            (SUMMARY_KEY, json.dumps(summary(result, self.config.invocation_params.dir)))
        )
        outcome = judge_repaired_article(
            {k: v.verdict for k, v in result.verified.verdicts.items()}, result.verified.error, blocking=False
        )
        if outcome.status == XFAIL:
            pytest.xfail(outcome.message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return f"repaired article: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "the repaired article verifies"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After the claims table: the repair as edits, and the repaired article's verification; the
    same section appended to each --claims-report file."""
    found = [
        json.loads(v) for items in call_properties(terminalreporter) for k, v in items if k == SUMMARY_KEY
    ]
    if not found:
        return
    terminalreporter.section("the smallest proven repair")
    terminalreporter.write(repair_terminal(found[0]))
    for path in config.getoption("claims_report"):
        if Path(path).exists():
            with open(path, "a", encoding="utf-8") as out:
                out.write(repair_markdown(found[0]))
