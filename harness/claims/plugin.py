"""The claims as pytest tests: ``claims/catalogue.yaml`` -> one test per claim per stack.

Two modes:

- recorded (the default, what ``tox`` runs): a claim's test fails when its verdict differs
  from the one recorded in ``claims/verdicts/<stack>.yaml``, in either direction, so CI goes
  red the day a release breaks or repairs a claim, while a known, recorded break stays green.
  ``--snapshot-update`` records the verdicts observed.
- gate (``--claims-gate``, the main job): broken fails, drifted warns (fails with
  ``--strict-claims``), not checked is skipped with its reason.

The article is probed once per stack per session; checks are pure functions of that probe.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.claims.article import Article, ArticleError, load_article
from harness.claims.checks import BROKEN, CHECKS, DRIFTED, NOT_CHECKED, VERDICTS, Verdict, run_check
from harness.claims.probe import Observations, probe
from harness.claims.report import ClaimResult, environment_json, markdown, terminal_table
from harness.plugin import ALL_STACKS, call_properties, expand_stacks, harness
from harness.server import ServerError
from harness.stacks import StackError

DEFAULT_CLAIMS_STACKS = ["article", "current"]


class ClaimDriftWarning(UserWarning):
    """A claim that still works but no longer as the article words it."""


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    claim: str
    check: str


def load_catalogue(path: Path) -> list[Claim]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    claims = []
    for index, entry in enumerate(data.get("claims", []) if isinstance(data, dict) else []):
        missing = {"id", "section", "claim", "check"} - set(entry)
        if missing:
            raise ValueError(f"{path}: claims[{index}] lacks {sorted(missing)}")
        if entry["check"] not in CHECKS:
            raise ValueError(
                f"{path}: claim {entry['id']!r} names an unknown check {entry['check']!r}; "
                f"known checks: {', '.join(sorted(CHECKS))}"
            )
        claims.append(Claim(entry["id"], entry["section"], entry["claim"], entry["check"]))
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: claim ids repeat")
    return claims


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("migrate-harness claims")
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


class _Probes:
    """One probe per stack per session, made on first use."""

    def __init__(self) -> None:
        self.results: dict[str, Observations | str] = {}
        self.article: Article | None = None

    def get(self, config: pytest.Config, stack: str) -> Observations:
        if self.article is None:
            self.article = load_article()
        if stack not in self.results:
            h = harness(config)
            try:
                self.results[stack] = probe(
                    h.stack_env(stack), h.server(), self.article, timeout=config.getoption("command_timeout")
                )
            except (StackError, ServerError) as exc:
                self.results[stack] = str(exc)
        result = self.results[stack]
        if isinstance(result, str):
            raise ClaimFailed(f"cannot probe the article on stack {stack!r}: {result}")
        return result


_PROBES = pytest.StashKey[_Probes]()


def claim_stacks(config: pytest.Config) -> list[str]:
    return expand_stacks(config, config.getoption("claims_stack"), DEFAULT_CLAIMS_STACKS)


@pytest.hookimpl(trylast=True)  # after harness.plugin has made the session's Harness
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_PROBES] = _Probes()
    known = harness(config).stacks
    unknown = [s for s in config.getoption("claims_stack") if s not in known and s != ALL_STACKS]
    if unknown:
        raise pytest.UsageError(f"unknown stack(s) {unknown}; stacks.toml defines {sorted(known)}")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == "catalogue.yaml" and file_path.parent.name == "claims":
        return CatalogueFile.from_parent(parent, path=file_path)
    return None


class ClaimFailed(Exception):
    pass


class CatalogueFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        try:
            claims = load_catalogue(self.path)
        except (ValueError, yaml.YAMLError) as exc:
            raise self.CollectError(str(exc)) from None
        return [
            ClaimItem.from_parent(self, name=f"{claim.id}[{stack}]", claim=claim, stack=stack)
            for stack in claim_stacks(self.config)
            for claim in claims
        ]


def verdicts_file(catalogue: Path, stack: str) -> Path:
    return catalogue.parent / "verdicts" / f"{stack}.yaml"


def _record(path: Path, claim: str, verdict: str) -> bool:
    """Store one verdict. xdist workers share the file, so the read-modify-write holds a lock
    on the folder (a lock file would itself need cleaning up)."""
    path.parent.mkdir(exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
        if data.get(claim) == verdict:
            return False
        data[claim] = verdict
        path.write_text(yaml.safe_dump(dict(sorted(data.items())), sort_keys=False))
        return True
    finally:
        os.close(folder)


class ClaimItem(pytest.Item):
    def __init__(self, *, claim: Claim, stack: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.claim = claim
        self.stack = stack
        # under `pytest -n N --dist loadgroup` a stack's claims share one worker, so one probe
        self.add_marker(pytest.mark.xdist_group(f"claims-{stack}"))

    def runtest(self) -> None:
        probes = self.config.stash[_PROBES]
        try:
            obs = probes.get(self.config, self.stack)
        except ArticleError as exc:
            raise ClaimFailed(str(exc)) from None
        verdict = run_check(self.claim.check, obs, probes.article)  # type: ignore[arg-type]
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
        if self.config.getoption("claims_gate"):
            self._gate(verdict)
        else:
            self._compare_with_record(verdict)

    def _evidence(self, verdict: Verdict) -> str:
        why = f"\nwhy: {verdict.reason}" if verdict.reason else ""
        return f"article says:\n{verdict.article}\nobserved:\n{verdict.observed}{why}"

    def _gate(self, verdict: Verdict) -> None:
        if verdict.verdict == BROKEN:
            raise ClaimFailed(f"broken\n{self._evidence(verdict)}")
        if verdict.verdict == DRIFTED:
            if self.config.getoption("strict_claims"):
                raise ClaimFailed(f"drifted (--strict-claims)\n{self._evidence(verdict)}")
            warnings.warn(
                ClaimDriftWarning(f"{self.claim.id} [{self.stack}] drifted: {verdict.observed}"), stacklevel=1
            )
        if verdict.verdict == NOT_CHECKED:
            pytest.skip(f"not checked: {verdict.reason}: {verdict.observed}")

    def _compare_with_record(self, verdict: Verdict) -> None:
        path = verdicts_file(self.path, self.stack)
        if self.config.getoption("snapshot_update"):
            if _record(path, self.claim.id, verdict.verdict):
                self.user_properties.append(
                    ("snapshot_written", f"{path} ({self.claim.id}: {verdict.verdict})")
                )
            return
        recorded = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
        expected = recorded.get(self.claim.id)
        if expected is None:
            raise ClaimFailed(
                f"no recorded verdict in {path} (observed: {verdict.verdict}); run with "
                "--snapshot-update to record it, then review the file."
            )
        if expected not in VERDICTS:
            raise ClaimFailed(f"{path}: {self.claim.id}: {expected!r} is not one of {VERDICTS}")
        if expected != verdict.verdict:
            raise ClaimFailed(
                f"verdict changed: recorded {expected!r}, observed {verdict.verdict!r}\n"
                f"{self._evidence(verdict)}\n"
                "If the change is real, record it with --snapshot-update, and update the article or its docs."
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ClaimFailed):
            return f"claim {self.claim.id!r} on stack {self.stack!r}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"claim {self.claim.id} [{self.stack}]"


def _results(terminalreporter: Any) -> list[ClaimResult]:
    results = (ClaimResult.from_properties(props) for props in call_properties(terminalreporter))
    return [r for r in results if r is not None]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    results = _results(terminalreporter)
    if not results:
        return
    # keep the catalogue's order and the stacks' order whatever order the tests ran in
    order = (
        {c.id: i for i, c in enumerate(load_catalogue(Path(config.rootpath) / "claims" / "catalogue.yaml"))}
        if (Path(config.rootpath) / "claims" / "catalogue.yaml").exists()
        else {}
    )
    stacks = claim_stacks(config)
    results.sort(
        key=lambda r: (order.get(r.claim, len(order)), stacks.index(r.stack) if r.stack in stacks else 99)
    )
    terminalreporter.section("claims report")
    terminalreporter.write(terminal_table(results, width=max(terminalreporter._tw.fullwidth, 100)))
    for path in config.getoption("claims_report"):
        try:
            name = load_article().path.name
        except ArticleError:
            name = "the article"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(markdown(results, name), encoding="utf-8")
        terminalreporter.write_line(f"claims report written to {path}")
