"""The pytest glue: scenario files and the claims catalogue become tests; outcomes become reports.

This folder is the only part of the harness that imports pytest. It decides nothing: a
`Session` runs, `judge` decides, and the items here translate an `Outcome` into pass, fail,
xfail or skip. Registered as the ``pytest11`` entry point ``migrate_harness``, so any project that
installs the harness gets it; where to find the scenarios, the fixture project, the stacks file,
the claims catalogue and the article are ini options (defaults: this repository's layout).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness import store
from harness.claims.catalogue import load_catalogue
from harness.plugin.claims import CLAIMS_STASH, CatalogueFile, ClaimsState, add_claims_options, claims_summary
from harness.plugin.common import (
    ALL_STACKS,
    SESSION,
    SETTINGS,
    Settings,
    call_properties,
    scenario_stacks,
    session_of,
)
from harness.plugin.scenarios import ScenarioFile
from harness.scenario import is_scenario_file
from harness.server import ServerError, choose_pg_ctl
from harness.session import Options, Session, add_arguments, stop_on_sigterm
from harness.stacks import StackEnv

pytest_plugins = ["harness.plugin.article_job"]  # --claims-repair: the main job's repair column

__all__ = ["pytest_addoption", "pytest_configure", "harness_server", "harness_stack"]

INI = {
    "migrate_harness_scenarios": "folders holding scenario files (default: scenarios)",
    "migrate_harness_fixture": "the article's project, copied for each run (default: fixtures/project)",
    "migrate_harness_stacks": "the stacks file (default: stacks.toml)",
    "migrate_harness_catalogue": "the claims catalogue (default: claims/catalogue.yaml)",
    "migrate_harness_article": "the article's text (default: $MIGRATE_HARNESS_ARTICLE, else "
    "../shared/article/flask-migrate-autogenerate.txt)",
}


UNUSED = pytest.StashKey[list[tuple[Path, "str | None"]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("migrate-harness")
    group.addoption(
        "--stack",
        action="append",
        default=[],
        metavar="NAME",
        help="run the scenarios on this stack (repeatable; 'all' for every stack; default: current)",
    )
    group.addoption(
        "--snapshot-update",
        action="store_true",
        help="write observed results into the snapshots and claim records, delete unused ones",
    )
    add_arguments(group)
    add_claims_options(group)
    for name, help_text in INI.items():
        parser.addini(name, help_text, type="paths" if name == "migrate_harness_scenarios" else "string")


def pytest_configure(config: pytest.Config) -> None:
    settings = Settings.from_config(config)
    config.stash[SETTINGS] = settings
    session = Session(
        Options.from_values(vars(config.option), stacks_file=settings.stacks_file, fixture=settings.fixture)
    )
    config.stash[SESSION] = session
    config.add_cleanup(session.close)
    config.stash[CLAIMS_STASH] = ClaimsState(settings.article)
    chosen = config.getoption("stack") + config.getoption("claims_stack")
    unknown = [s for s in chosen if s not in session.stacks and s != ALL_STACKS]
    if unknown:
        raise pytest.UsageError(
            f"unknown stack(s) {unknown}; {settings.stacks_file} defines {sorted(session.stacks)}"
        )
    # One malformed scenario file must not stop the others: its collection error is reported
    # (and fails the run) while every other scenario still runs. `-x`/`--maxfail` keep pytest's
    # stop-early behaviour.
    if not config.option.maxfail:
        config.option.continue_on_collection_errors = True
    stop_on_sigterm()


def pytest_report_header(config: pytest.Config) -> str:
    """Say which PostgreSQL the run uses before it starts (a fallback to the wheel is no secret)."""
    if config.getoption("pg_url"):
        return "migrate-harness: the running PostgreSQL named by --pg-url"
    try:
        return (
            "migrate-harness: " + choose_pg_ctl(config.getoption("postgres"), config.getoption("pg_ctl")).note
        )
    except ServerError as exc:
        return f"migrate-harness: no usable PostgreSQL: {exc}"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    settings = parent.config.stash[SETTINGS]
    if is_scenario_file(file_path, settings.scenario_roots):
        return ScenarioFile.from_parent(parent, path=file_path)
    if file_path == settings.catalogue:
        return CatalogueFile.from_parent(parent, path=file_path)
    return None


def _arg_paths(config: pytest.Config) -> list[Path]:
    """The paths the run was given (the rootdir when none), absolute."""
    paths = []
    for arg in config.args or [str(config.rootpath)]:
        path = Path(arg.split("::")[0])
        paths.append(path if path.is_absolute() else config.invocation_params.dir / path)
    return paths


def _collected_roots(config: pytest.Config) -> list[Path]:
    roots = []
    for path in _arg_paths(config):
        if path.is_dir() and ("scenarios" in path.parts or (path / "scenarios").is_dir()):
            roots.append(path)
    return roots


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Unused snapshots fail the run, or are deleted with --snapshot-update (the controller
    judges them once; xdist workers do not)."""
    config = session.config
    if hasattr(config, "workerinput") or config.option.collectonly:
        return
    stacks = set(session_of(config).stacks)
    unused: list[tuple[Path, str | None]] = [
        (p, None) for p in store.unused_snapshots(_collected_roots(config), stacks)
    ]
    catalogue = config.stash[SETTINGS].catalogue
    # read from the file, not from collection: under xdist the controller collects nothing
    if catalogue.exists() and any(catalogue.is_relative_to(root) for root in _arg_paths(config)):
        ids = {claim.id for claim in load_catalogue(catalogue)}
        unused += store.unused_records(catalogue, ids, stacks)
    config.stash[UNUSED] = unused
    if not unused:
        return
    if config.getoption("snapshot_update"):
        for path, key in unused:
            if key is None and path.parent.name == store.SNAPSHOT_DIR:
                path.unlink(missing_ok=True)
            else:
                store.delete_record(path, key)
    elif session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    props = call_properties(terminalreporter)
    written = [value for items in props for key, value in items if key == "snapshot_written"]
    if written:
        terminalreporter.section("snapshots written")
        for path in sorted(written):
            terminalreporter.write_line(f"  {path}")
    unused = config.stash.get(UNUSED, [])
    if unused:
        deleted = config.getoption("snapshot_update")
        terminalreporter.section(
            "unused snapshots deleted" if deleted else "unused snapshots", red=not deleted
        )
        for path, key in unused:
            name = os.path.relpath(path, config.rootpath) + (f": {key}" if key else "")
            terminalreporter.write_line(f"  {name}")
        if not deleted:
            terminalreporter.write_line(
                f"  {len(unused)} unused: no scenario, claim or stack owns them. Run with --snapshot-update "
                "to delete them, or restore what owned them."
            )
    claims_summary(terminalreporter, config, props)


@pytest.fixture(scope="session")
def harness_server(pytestconfig: pytest.Config) -> Any:
    """The session's PostgreSQL server (throwaway, or the one --pg-url names), for tests."""
    return session_of(pytestconfig).server()


@pytest.fixture(scope="session")
def harness_stack(pytestconfig: pytest.Config) -> StackEnv:
    """The first selected stack's environment (default: current), for tests."""
    return session_of(pytestconfig).stack_env(scenario_stacks(pytestconfig)[0])
