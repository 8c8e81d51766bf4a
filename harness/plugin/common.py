"""What the scenario and claim items share: the session and settings of a pytest run, and the stacks
a run asked for."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.claims.article import ARTICLE_ENV, DEFAULT_ARTICLE
from harness.judge import FAIL, SKIP, XFAIL, Outcome
from harness.project import FIXTURE
from harness.session import DEFAULT_STACK, Session
from harness.stacks import DEFAULT_STACKS_FILE

ALL_STACKS = "all"


def _path(config: pytest.Config, name: str, relative: str, packaged: Path) -> Path:
    """An ini path option: as set (relative to the rootdir), else `relative` under the rootdir if
    it exists there, else the harness's own copy (what a run inside this repository uses)."""
    value = config.getini(name)
    if value:
        path = Path(value)
        return path if path.is_absolute() else config.rootpath / path
    here = config.rootpath / relative
    return here if here.exists() else packaged


@dataclass(frozen=True)
class Settings:
    """Where a run finds its inputs (ini options, resolved once)."""

    scenario_roots: tuple[Path, ...] | None  # None: any folder named `scenarios`
    fixture: Path
    stacks_file: Path
    catalogue: Path
    article: Path

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        roots = config.getini("migrate_harness_scenarios")
        article_env = os.environ.get(ARTICLE_ENV)
        chosen = config.getoption("article", None)  # --article PATH checks any version of the text
        return cls(
            scenario_roots=tuple(Path(r) for r in roots) or None,
            fixture=_path(config, "migrate_harness_fixture", "fixtures/project", FIXTURE),
            stacks_file=_path(config, "migrate_harness_stacks", "stacks.toml", DEFAULT_STACKS_FILE),
            catalogue=_path(
                config,
                "migrate_harness_catalogue",
                "claims/catalogue.yaml",
                config.rootpath / "claims/catalogue.yaml",
            ),
            article=Path(chosen).resolve()
            if chosen
            else _path(
                config,
                "migrate_harness_article",
                article_env or "../shared/article/flask-migrate-autogenerate.txt",
                Path(article_env) if article_env else DEFAULT_ARTICLE,
            ),
        )


SESSION = pytest.StashKey[Session]()
SETTINGS = pytest.StashKey[Settings]()


def session_of(config: pytest.Config) -> Session:
    return config.stash[SESSION]


def expand_stacks(
    config: pytest.Config, chosen: list[str], default: list[str], scenarios: bool = False
) -> list[str]:
    """The stacks asked for, in order. "all" means every stack in the stacks file (for the scenario
    library, every stack that does not opt out with `scenarios = false`)."""
    stacks = session_of(config).stacks
    every = [name for name, stack in stacks.items() if stack.scenarios or not scenarios]
    out: list[str] = []
    for name in chosen or default:
        out += every if name == ALL_STACKS else [name]
    return list(dict.fromkeys(out))


def scenario_stacks(config: pytest.Config) -> list[str]:
    return expand_stacks(config, config.getoption("stack"), [DEFAULT_STACK], scenarios=True)


def translate(outcome: Outcome, failed: type[Exception], warning: type[Warning]) -> None:
    """The judge's `Outcome` as pytest says it, the same for every item: its warnings, then skip,
    xfail, or `failed` raised with the judge's message (the items print it without a traceback)."""
    for text in outcome.warnings:
        warnings.warn(warning(text), stacklevel=2)
    if outcome.status == SKIP:
        pytest.skip(outcome.message)
    if outcome.status == XFAIL:
        pytest.xfail(outcome.message)
    if outcome.status == FAIL:
        raise failed(outcome.message)


def failure_text(prefix: str, excinfo: Any, detail: Any) -> str:
    """An error inside the harness: its cause first, in one line, then pytest's own report."""
    cause = excinfo.exconly().strip().splitlines()[-1]
    return f"{prefix}: {cause}\n\n{detail}"


def call_properties(terminalreporter: Any) -> list[list[tuple[str, Any]]]:
    """The user_properties of every test's call phase (they travel back from xdist workers)."""
    return [
        list(getattr(report, "user_properties", []))
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
    ]
