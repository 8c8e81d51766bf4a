"""Pieces shared by the tests that run the harness as a user does (inner pytest sessions)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from harness.server import Server
from harness.session import Options, Session
from harness.stacks import default_cache_root

# Read at import, before pytester moves HOME to its own folder: inner runs then reuse the
# stacks' environments instead of building them again.
STACK_CACHE = str(default_cache_root())

OWNERS = """\
      class Owner(db.Model):
          __tablename__ = "owners"

          id = db.Column(db.Integer, primary_key=True)
"""

ONE_TABLE = """\
id: {id}
title: one table
steps:
  - name: owners
    models: |
{models}    commands:
      - init
      - migrate: create owners table
      - upgrade
"""


def one_table(scenario_id: str, models: str = OWNERS) -> str:
    """A scenario file's text: init, one model, migrate, upgrade."""
    return ONE_TABLE.format(id=scenario_id, models=models)


def timeout_after(seconds: float) -> int:
    """A command timeout derived from a measured command that does the same without its hang:
    2 s plus five times as long, in whole seconds. A busy machine makes every command slower
    alike, so the timeout grows with it instead of expiring before the hang begins."""
    return math.ceil(2 + 5 * seconds)


def timeout_for(run: Any) -> int:
    """`timeout_after` the slowest command of a run of the same scenario without its hang."""
    return timeout_after(max(c.result.seconds for s in run.steps for c in s.commands if c.result is not None))


def processes_in(folder: Path) -> list[str]:
    """Processes whose working folder or command line is inside `folder`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append(f"{proc.name}: {cmdline.strip()} (in {cwd})")
    return found


def session_for(server: Server, runner: str = "fork", timeout: float = 120.0, **options: Any) -> Session:
    """A session of its own on an existing server (the run's throwaway one): the tests that
    compare runners or options need sessions the plugin's own does not provide. The fork runner
    by default: tests/test_fastrunner.py proves it observes what the subprocess runner does, at a
    tenth of the cost per command; a test about the subprocess runner asks for it."""
    url = server.url.render_as_string(hide_password=False)
    return Session(Options(pg_url=url, runner=runner, command_timeout=timeout, **options))
