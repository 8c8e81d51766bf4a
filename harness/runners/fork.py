"""The fork runner: ``flask db`` commands forked from a pre-imported parent in the stack's interpreter.

A ``flask db`` command run as a process spends most of its time importing Flask, SQLAlchemy,
Alembic and psycopg2. `ForkServer` starts ``forkserver_main.py`` once per stack with the stack's
own interpreter and the reader's environment; it imports those libraries (never the project's
app) and forks one child per command. The child takes the command's folder, environment
(`reader_env`, so no ``FLASK_APP``: ``.flaskenv`` must supply it), argv and its own
stdout/stderr, then runs the stack's real ``flask`` console script. The app and the models are
therefore imported afresh by every command, as in the subprocess runner, and the result comes
back as the same `CommandResult`.

Timeouts are enforced by the server (it kills the child's whole session); if the harness is
interrupted mid-command, it kills the child and the server itself. `stop` (or leaving the
``with`` block) ends the server: nothing is left running.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.account import hand_over, popen_kwargs
from harness.reaper import REAPER
from harness.runners.base import DEFAULT_TIMEOUT, CommandResult, Runner, links_note, reader_env, run
from harness.stacks import StackEnv

SERVER_SCRIPT = Path(__file__).resolve().parent / "forkserver_main.py"
STARTUP_TIMEOUT = 120.0
# Extra time the harness waits for a reply beyond the command's own timeout, which the server
# enforces; past it the server itself is considered hung.
REPLY_GRACE = 30.0


class ForkServerError(Exception):
    """The fork server could not start or stopped answering; the message says what to do."""


def _text(data: bytes) -> str:
    """Decode like `subprocess` with text=True: locale encoding, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data)).read()


@dataclass
class ForkServer:
    """One running fork server for one stack. Serves one command at a time (a lock)."""

    stack: StackEnv
    process: subprocess.Popen[bytes]
    log: IO[bytes]  # the server's own stderr, shown when it fails
    startup_timeout: float = STARTUP_TIMEOUT
    _hello: dict[str, Any] | None = None
    _pending: bytes = b""  # what the server wrote past the last line read
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, stack: StackEnv, startup_timeout: float = STARTUP_TIMEOUT) -> ForkServer:
        """Launch the server and return at once: its imports (a second or more) then overlap with
        whatever the caller does next, such as starting PostgreSQL. The first command waits."""
        python = stack.executable("python")
        log = tempfile.TemporaryFile(prefix="migrate-harness-forkserver-")  # noqa: SIM115 (closed in stop)
        # The script's text, not its path: as root the server runs as the scenario account, which
        # may not reach the harness's checkout (a clone under /root). `-c` sets no interpreter
        # flag a child would inherit, and the server sets sys.path[0] itself.
        process = subprocess.Popen(
            [str(python), "-c", SERVER_SCRIPT.read_text()],
            cwd="/",
            env=reader_env(stack.bin_dir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            **popen_kwargs(),  # as root: the scenario account, which its children then are too
        )
        return cls(stack=stack, process=process, log=log, startup_timeout=startup_timeout)

    @property
    def hello(self) -> dict[str, Any]:
        """The server's first line: pid, Python version, what it preimported and what it could not."""
        if self._hello is None:
            self._hello = self._read(self.startup_timeout, "starting")
        return self._hello

    @property
    def pid(self) -> int:
        return self.process.pid

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:].strip()

    def _fail(self, what: str) -> ForkServerError:
        tail = self._log_tail()
        self.stop()
        return ForkServerError(
            f"fork server for stack {self.stack.stack.name!r} ({self.stack.executable('python')}) {what}."
            + (f"\nIts stderr:\n{tail}" if tail else "")
            + "\nWhat to do: run with --runner subprocess to see whether the stack itself works, "
            "and report the fork server's error."
        )

    def _read(self, timeout: float, doing: str) -> dict[str, Any]:
        """The server's next line, waiting at most `timeout` seconds for it.

        Reads the pipe's file descriptor directly and keeps what follows the line for the next
        call. (Selecting on the descriptor and then calling ``readline`` on the buffered file
        would deadlock: a fast command's two lines, ``child`` and the reply, arrive together on
        a busy machine, the first ``readline`` buffers both, and the next ``select`` then waits
        for bytes that were already read.)
        """
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            ready, _, _ = select.select([stdout.fileno()], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise self._fail(f"did not answer within {timeout:g}s while {doing}")
            chunk = os.read(stdout.fileno(), 1 << 16)
            if not chunk:
                raise self._fail(f"exited (code {self.process.wait()}) while {doing}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def run(
        self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float = DEFAULT_TIMEOUT
    ) -> CommandResult:
        """Run `argv` (argv[0] a Python console script of the stack) as a forked child."""
        request = {"argv": argv, "cwd": str(cwd), "env": env, "timeout": timeout}
        with self._lock:
            if self.process.poll() is not None:
                raise self._fail(f"is not running (exit code {self.process.returncode})")
            hand_over(cwd)
            self.hello  # noqa: B018 (waits for the server to be ready, once)
            start = time.perf_counter()
            stdin = self.process.stdin
            assert stdin is not None
            try:
                stdin.write((json.dumps(request) + "\n").encode())
                stdin.flush()
            except BrokenPipeError:
                raise self._fail("closed its input") from None
            child = self._read(REPLY_GRACE, "forking").get("child")
            REAPER.add("pgid", str(child))  # the reaper kills the command if the harness is killed
            try:
                reply = self._read(timeout + REPLY_GRACE, f"running {argv[1:]}")
            except BaseException:
                # Interrupted or the server hung: the child leads its own session; end it too.
                if isinstance(child, int):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(child, signal.SIGKILL)
                self.stop()
                raise
            finally:
                REAPER.remove("pgid", str(child))
            return CommandResult(
                argv=tuple(argv),
                exit_code=reply["exit_code"],
                stdout=_text(base64.b64decode(reply["stdout"])),
                stderr=_text(base64.b64decode(reply["stderr"])) + links_note(cwd),
                seconds=time.perf_counter() - start,
                timed_out=bool(reply["timed_out"]),
            )

    def stop(self) -> None:
        """End the server and reap it; safe to call twice."""
        if self.process.poll() is None:
            try:
                if self.process.stdin:
                    self.process.stdin.close()  # a clean stop: the server exits on EOF
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.log.close()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ForkRunner(Runner):
    """A `Runner` whose commands are forked by one `ForkServer` for the stack.

    The server starts (and imports) as soon as the runner is made, so its imports overlap with
    whatever the session does next; a server that died is started again at the next command.
    A command with standard input (``flask shell`` fed a script) runs as a process: the fork
    server's children read /dev/null, as a command the harness starts without input does.
    """

    name = "fork"

    def __init__(
        self, stack: StackEnv, timeout: float = DEFAULT_TIMEOUT, server: ForkServer | None = None
    ) -> None:
        super().__init__(stack, timeout)
        self.server = server or ForkServer.start(stack)

    def command(self, argv: list[str], cwd: Path, stdin: str | None = None) -> CommandResult:
        executable = str(self.stack.executable(argv[0]))
        env = reader_env(self.stack.bin_dir)
        if stdin is not None:
            return run([executable, *argv[1:]], cwd, env, self.timeout, stdin)
        if self.server.process.poll() is not None:
            self.server.stop()
            self.server = ForkServer.start(self.stack)
        return self.server.run([executable, *argv[1:]], cwd, env, self.timeout)

    def close(self) -> None:
        self.server.stop()
