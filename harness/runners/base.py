"""What every runner shares: the command result, the reader's environment, the process call,
the `Runner` type and the line that says why a command failed.

Commands run the way a reader runs them: the stack's own ``flask``, in the project folder.

No shell is involved and the environment carries no ``FLASK_APP`` or ``DATABASE_URL``: the
project's ``.flaskenv`` must supply them, exactly as in the article. Each command has a
timeout; a command that hangs is killed with its whole process group and its output so far
is kept for the failure message.

When the harness is root, every command runs as the unprivileged scenario account
(`harness.account`): its folder is handed to that account first, and links it leaves are removed
after it, so that the harness never reads or writes through them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from harness.account import hand_over, popen_kwargs, remove_links, scenario_account
from harness.reaper import REAPER
from harness.stacks import StackEnv

DEFAULT_TIMEOUT = 120.0
# The only variables a command inherits from the harness (like tox's pass_env): what a reader's
# shell has and a command may need. Anything else (a CI secret, MIGRATE_HARNESS_PG_URL with the
# server's admin password, PGPASSWORD, FLASK_APP, DATABASE_URL, VIRTUAL_ENV, PYTHONPATH) never
# reaches scenario code: the project's .flaskenv must supply the app and its database.
PASS_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TMPDIR", "TERM")


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int | None  # None when the command was stopped at its timeout
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def output(self) -> str:
        return "\n".join(part for part in (self.stdout.rstrip(), self.stderr.rstrip()) if part)


def reader_env(bin_dir: Path) -> dict[str, str]:
    """The environment of a reader whose virtual environment is `bin_dir`'s, activated. As root,
    the user is the scenario account (its HOME, USER and LOGNAME), never root."""
    env = {k: v for k, v in os.environ.items() if k in PASS_ENV}
    account = scenario_account()
    if account is not None:
        env.update(account.env())
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["TZ"] = "UTC"
    # One str hash for every run, so that output printed in the order of a set of strings is
    # printed in one order (sets holding None still vary on Python 3.11: observe.normalise).
    env["PYTHONHASHSEED"] = "0"
    return env


def run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
) -> CommandResult:
    """Run one command; never raises for a failing or hanging command, only records it."""
    hand_over(cwd)
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        text=True,
        start_new_session=True,
        **popen_kwargs(),
    )
    timed_out = False
    REAPER.add("pgid", str(proc.pid))  # killed by the reaper if the harness is
    try:
        stdout, stderr = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        REAPER.remove("pgid", str(proc.pid))
    return CommandResult(
        argv=tuple(argv),
        exit_code=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr + links_note(cwd),
        seconds=time.perf_counter() - start,
        timed_out=timed_out,
    )


def links_note(cwd: Path) -> str:
    """After a command: remove the links it left in its folder (as root) and say so on stderr."""
    removed = remove_links(cwd)
    if not removed:
        return ""
    return (
        f"migrate-harness: removed the link(s) this command made, which the harness (root) would "
        f"have followed: {', '.join(removed)}\n"
    )


# A traceback's exception line ("sqlalchemy.exc.IntegrityError: (...) column ... contains null
# values"); SQLAlchemy prints "[SQL: ...]" and a "Background on this error" link after it, so the
# last line alone would hide the cause.
_EXCEPTION_LINE = re.compile(r"^[\w.]*(?:Error|Exception): \S")


def error_line(text: str) -> str:
    """The line that says why a command failed: its last exception line, else its last line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    exceptions = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return (exceptions or lines or [""])[-1]


class Runner(ABC):
    """Runs one stack's console scripts (``flask``, ``alembic``) in a folder, as a reader does.

    A runner is owned by a session and closed with it; `command` never raises for a command
    that fails or hangs, it records it.
    """

    name = "runner"

    def __init__(self, stack: StackEnv, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.stack = stack
        self.timeout = timeout

    @abstractmethod
    def command(self, argv: list[str], cwd: Path, stdin: str | None = None) -> CommandResult:
        """Run `argv` (argv[0] a console script of the stack, e.g. ``flask``) in `cwd`."""

    def flask_db(self, project: Path, args: list[str]) -> CommandResult:
        """`flask db ARGS` in the project folder."""
        return self.command(["flask", "db", *args], project)

    def close(self) -> None:  # noqa: B027 (most runners hold nothing)
        """Release what the runner holds (a fork server); safe to call twice."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
