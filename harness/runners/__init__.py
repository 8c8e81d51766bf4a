"""How a stack's console scripts run: one process per command, or forked from a pre-imported parent.

Nothing here knows about scenarios, snapshots or pytest: a runner takes an argv, a folder and
optional standard input, and returns a `CommandResult`. Everything above builds on that.
"""

from harness.runners.base import DEFAULT_TIMEOUT, CommandResult, Runner, error_line
from harness.runners.fork import ForkRunner, ForkServer, ForkServerError
from harness.runners.process import SubprocessRunner

RUNNERS = {"subprocess": SubprocessRunner, "fork": ForkRunner}

__all__ = [
    "DEFAULT_TIMEOUT",
    "RUNNERS",
    "CommandResult",
    "ForkRunner",
    "ForkServer",
    "ForkServerError",
    "Runner",
    "SubprocessRunner",
    "error_line",
]
