"""The subprocess runner: every command is a new process, exactly what a reader's shell starts.

It is the reference: the fork runner is used only where a test shows it observes the same.
"""

from __future__ import annotations

from pathlib import Path

from harness.runners.base import CommandResult, Runner, reader_env, run


class SubprocessRunner(Runner):
    name = "subprocess"

    def command(self, argv: list[str], cwd: Path, stdin: str | None = None) -> CommandResult:
        executable = str(self.stack.executable(argv[0]))
        return run([executable, *argv[1:]], cwd, reader_env(self.stack.bin_dir), self.timeout, stdin)
