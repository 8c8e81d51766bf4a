"""Running ``flask db`` the way a reader does: the stack's own ``flask``, in the project folder.

No shell is involved and the environment carries no ``FLASK_APP`` or ``DATABASE_URL``: the
project's ``.flaskenv`` must supply them, exactly as in the article. Each command has a
timeout; a command that hangs is killed with its whole process group and its output so far
is kept for the failure message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 120.0
# Variables a reader's shell would not have, or that would let the harness's own setup leak
# into the project under test (MIGRATE_HARNESS_PG_URL holds the server's admin password).
_DROP = (
    "FLASK_",
    "DATABASE_URL",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "TOX_",
    "MIGRATE_HARNESS_",
    "PYTEST_",
)


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
    """The environment of a reader whose virtual environment is `bin_dir`'s, activated."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["TZ"] = "UTC"
    return env


def run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
) -> CommandResult:
    """Run one command; never raises for a failing or hanging command, only records it."""
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
    )
    timed_out = False
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
    return CommandResult(
        argv=tuple(argv),
        exit_code=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        seconds=time.perf_counter() - start,
        timed_out=timed_out,
    )


def flask_db(
    bin_dir: Path, project: Path, args: list[str], timeout: float = DEFAULT_TIMEOUT
) -> CommandResult:
    """`flask db ARGS` from the stack's environment, in the project folder."""
    return run([str(bin_dir / "flask"), "db", *args], project, reader_env(bin_dir), timeout)
