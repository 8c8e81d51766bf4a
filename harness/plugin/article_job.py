"""The main job's second column: the article with its smallest proven repair, and the repaired article.

With ``--claims-repair``, every claim collected from the catalogue gets a twin item judged on the
article with the repair (`harness.claims.repair`), one item, ``repaired_article``, fails unless
the repaired article (`harness.claims.rewrite`) verifies (every claim holds), and one,
``recorded_repair``, compares what this run proved with the recorded repair (``repair.yaml``
beside the catalogue, `harness.claims.record`).

The recorded repair is re-proven, never trusted: its edits are applied to the article's text and
the edited text is followed for real, in a thread started with the first test, beside the
article's own probe. Only when the record does not apply (another text) or no longer holds, or
with ``--repair-search``, is the repair searched (several candidate texts, each followed). The
report gains the column and a section stating the repair as edits of the article's text.
Pass/fail comes from `judge`; nothing is decided here.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import store
from harness.claims.article import Article, ArticleError
from harness.claims.catalogue import Claim, load_catalogue
from harness.claims.record import Recorded, RecordError, applies_to, from_data, splice_of, to_data
from harness.claims.repair import (
    Prover,
    RepairError,
    Trial,
    apply_edits,
    describe,
    find_repair,
    holds_everywhere,
    line_stack,
)
from harness.claims.report import ClaimResult, environment_json, repair_markdown, repair_terminal
from harness.claims.rewrite import Rewrite, Written, rewrite, unified_diff, write_repaired
from harness.judge import (
    VERDICTS,
    ClaimFinding,
    judge_repair_column,
    judge_repair_record,
    judge_repaired_article,
)
from harness.plugin.claims import CLAIMS_STASH, ClaimDriftWarning, ClaimFailed, ClaimItem
from harness.plugin.common import SETTINGS, call_properties, session_of, translate
from harness.runners import ForkServerError
from harness.stacks import StackError

REPAIR_COLUMN = "with the repair"
SUMMARY_KEY = "repair_summary"
RECORD_NAME = "repair.yaml"  # beside the catalogue


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
    group.addoption(
        "--repair-search",
        action="store_true",
        help="search the repair even when the recorded one (repair.yaml beside the catalogue) still holds",
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
    source: str  # how the repair was found: re-proven from the record, or searched (and why)
    record_applies: bool  # the recorded repair was made for this text of the article


Replay = tuple[Trial, Trial]  # the text with the recorded repair, and the recorded repaired article


class RepairState:
    """The record read and its replay started with the first test; the search, the rewrite and
    the verification made once, on first use."""

    def __init__(self) -> None:
        self.result: RepairResult | str | None = None
        self.prover: Prover | None = None
        self.recorded: Recorded | None = None
        self.record_note = ""
        self.record_applies = False
        self.wanted: bool | None = None
        self.replay: Future[Replay] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(self, config: pytest.Config) -> None:
        """Read the record and, when it applies, start following the recorded repaired article in
        a thread (the first column's probe runs meanwhile in the main thread)."""
        if self.prover is not None or self.result is not None:
            return
        try:
            article = config.stash[CLAIMS_STASH].article
            self.prover = Prover(
                session_of(config), article, load_catalogue(config.stash[SETTINGS].catalogue)
            )
            self.recorded, self.record_note, self.record_applies = _read_record(config, article)
            texts = [article]
            if self.recorded is not None:
                texts.append(self.prover.edited(self.recorded.repair + self.recorded.rewrite))
            # the server, the stacks and their runners, made here in the main thread
            self.prover.prepare(texts)
            stack = self.prover.beside(texts[-1]) if self.recorded is not None else None
        except (ClaimFailed, ArticleError, RepairError, RecordError, StackError, ForkServerError) as exc:
            self.result = str(exc)
            return
        if self.recorded is not None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repair-replay")
            self.replay = self._pool.submit(_replay, self.prover, self.recorded, stack)

    def get(self, config: pytest.Config) -> RepairResult:
        if self.result is None:
            self.start(config)
        if self.result is None:
            try:
                self.result = _run(config, self)
            except (ClaimFailed, ArticleError) as exc:
                self.result = str(exc)
            finally:
                if self._pool is not None:
                    self._pool.shutdown()
        if isinstance(self.result, str):
            raise ClaimFailed(f"no repair could be searched: {self.result}")
        return self.result


REPAIR_STASH = pytest.StashKey[RepairState]()


def record_path(config: pytest.Config) -> Path:
    return config.stash[SETTINGS].catalogue.parent / RECORD_NAME


def _read_record(config: pytest.Config, article: Article) -> tuple[Recorded | None, str, bool]:
    """The recorded repair to re-prove (None: search), a note saying which, and whether the
    record was made for this text (then this run is compared with it, searched or not)."""
    path = record_path(config)
    try:
        data = store.read(path)
    except store.SnapshotError as exc:
        return None, f"searched: {str(exc).splitlines()[0]}", False
    if data is None:
        return None, f"searched: no recorded repair ({path.name})", False
    if not applies_to(data, article.text):
        return None, f"searched: {path.name} records the repair of another text of the article", False
    if config.getoption("repair_search"):
        return None, "searched (--repair-search)", True
    try:
        return from_data(data, article.text), f"re-proven from {path.name}", True
    except RecordError as exc:
        return None, f"searched: {path.name}: {exc}", True


def _replay(prover: Prover, recorded: Recorded, stack: str | None) -> Replay:
    """The recorded repair followed for real: one run serves both texts when the rewrite changes
    nothing the probe runs (`run_inputs`)."""
    column = prover.trial(recorded.repair, stack=stack)
    return column, prover.trial(recorded.repair + recorded.rewrite, stack=stack)


def _same_rewrite(text: str, recorded: Recorded, fresh: Rewrite) -> bool:
    """Whether today's run asks for exactly the recorded rewrite (the drifted passages unchanged)."""

    def splices(candidates: Any) -> list[Any]:
        return [[splice_of(text, e) for e in c.edits] for c in candidates]

    return not fresh.left_as_is and splices(recorded.rewrite) == splices(fresh.candidates)


def _run(config: pytest.Config, state: RepairState) -> RepairResult:
    claims = config.stash[CLAIMS_STASH]
    article = claims.article
    session = session_of(config)
    prover = state.prover
    assert prover is not None
    # the article as written, on a stack made from its own install line (the `article` stack of
    # stacks.toml when the line is unchanged, so the first column's probe is reused)
    obs = claims.probe(config, line_stack(session, article.install_packages))
    prover.seed(article, obs)
    base = Trial((), prover.verdicts(obs, article), obs, article)
    source = state.record_note
    if state.replay is not None and state.recorded is not None:
        column, repaired = state.replay.result()
        changes = rewrite(column) if column.article is not None else Rewrite([], [])
        if holds_everywhere(column, repaired) and _same_rewrite(article.text, state.recorded, changes):
            best, tried, verified = column, [column], repaired
            changes = Rewrite(list(state.recorded.rewrite), [])
        else:
            source = f"searched: the recorded repair ({RECORD_NAME}) no longer holds"
            best, tried = find_repair(prover, base)
            changes = rewrite(best)
            verified = prover.trial(best.candidates + tuple(changes.candidates))
    else:
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
    return RepairResult(base, best, tried, changes, verified, written, diff, source, state.record_applies)


def record_data(result: RepairResult) -> dict[str, Any]:
    """What this run proved, as the record keeps it."""
    article = result.base.article
    assert article is not None
    written = result.written
    return to_data(
        article.text,
        article.path.name,
        result.best.candidates,
        result.rewrite.candidates,
        {
            "as written": _counts(result.base),
            REPAIR_COLUMN: _counts(result.best),
            "repaired article": _counts(result.verified),
        },
        f"+{written.added} -{written.removed} lines" if written else "(not written)",
    )


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
        "repaired_verdicts": result.verified.verdict_names,
        "verifies": not judge_repaired_article(result.verified.verdict_names, result.verified.error).failed,
        "text_path": rel(written.text_path if written else None),
        "diff_path": rel(written.diff_path if written else None),
        "added": written.added if written else 0,
        "removed": written.removed if written else 0,
        "diff": result.diff,
        "source": result.source,
    }


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPAIR_STASH] = RepairState()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """With the first claim test, start re-proving the recorded repair beside the article's probe."""
    if not isinstance(item, ClaimItem | RepairClaimItem) or not item.config.getoption("claims_repair"):
        return
    state = item.config.stash[REPAIR_STASH]
    if state.wanted is None:  # only when a repair item is to run (not deselected): it waits for it
        state.wanted = any(isinstance(i, RepairClaimItem | RepairedArticleItem) for i in item.session.items)
    if state.wanted:
        state.start(item.config)


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
        items.append(RecordedRepairItem.from_parent(parent, name="recorded_repair"))


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
        translate(judge_repair_column(finding), ClaimFailed, ClaimDriftWarning)

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
        outcome = judge_repaired_article(result.verified.verdict_names, result.verified.error, blocking=False)
        translate(outcome, ClaimFailed, ClaimDriftWarning)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return f"repaired article: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "the repaired article verifies"


class RecordedRepairItem(pytest.Item):
    """What this run proved against the recorded repair; ``--snapshot-update`` records it."""

    def runtest(self) -> None:
        result = self.config.stash[REPAIR_STASH].get(self.config)
        path = record_path(self.config)
        verifies = not judge_repaired_article(result.verified.verdict_names, result.verified.error).failed
        observed = record_data(result)
        if self.config.getoption("snapshot_update"):
            if not verifies:
                raise ClaimFailed(f"nothing recorded in {path}: the repaired article does not verify")
            if store.write_file(observed, path):
                self.user_properties.append(("snapshot_written", str(path)))
            return
        comparison = store.compare_file(observed, path)
        translate(judge_repair_record(comparison, result.record_applies), ClaimFailed, ClaimDriftWarning)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return f"recorded repair: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "the recorded repair still holds"


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
