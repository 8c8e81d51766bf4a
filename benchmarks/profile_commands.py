"""Where a fork-runner command's time goes: fork to reap, the console script, and its parts.

    python -m benchmarks.profile_commands [--stack current] [--repeats 7] [--pg-url URL]

Prepares one project on a scratch database (``flask db init``, the fixture's models, one
migration upgraded), then runs ``profile_child.py`` in the stack's interpreter, which sets up as
the fork server does and forks each command `repeats` times plus once under cProfile. Commands:
``flask db --help`` (start-up, .flaskenv, app import, plugin lookup: no database), ``flask db
heads`` (adds Alembic's script folder) and ``flask db current`` (adds env.py, logging setup and the
login). Printed: medians of fork-to-reap wall, of the console script's own time, and of the
phases around it (fork, to child, setup, exit: see profile_child.py), and each part's cumulative
time in the profiled run (cProfile slows Python code, so parts are best read as shares of
"profiled"). Not included: the fork server's JSON round trip with the harness. Figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.account import popen_kwargs
from harness.runners.base import reader_env
from harness.runners.fork import SERVER_SCRIPT
from harness.runners.process import SubprocessRunner
from harness.server import URL_ENV
from harness.session import Options, Session

CHILD = Path(__file__).resolve().parent / "profile_child.py"
COMMANDS = (["--help"], ["heads"], ["current"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", default="current")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pg-url", default=os.environ.get(URL_ENV), help="use a running server")
    args = parser.parse_args(argv)
    console = Console(width=160)
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    # a workspace as a scenario gets (as root, a folder of the scenario account's), and the
    # child started as the fork server is (as root, as that account)
    with Session(Options(pg_url=args.pg_url)) as session, session.workspace("profile") as ws:
        env = session.stack_env(args.stack)
        project = ws.project()
        runner = SubprocessRunner(env)
        for step in (["init"], ["migrate", "-m", "first"], ["upgrade"]):
            done = runner.flask_db(project.root, step)
            if done.exit_code != 0:
                raise SystemExit(f"preparing the project: flask db {' '.join(step)} failed:\n{done.stderr}")
        flask = str(env.executable("flask"))
        job = {
            "runner_dir": str(SERVER_SCRIPT.parent),
            "repeats": args.repeats,
            "commands": [
                {"argv": [flask, "db", *c], "cwd": str(project.root), "env": reader_env(env.bin_dir)}
                for c in COMMANDS
            ],
        }
        done = subprocess.run(
            [str(env.executable("python")), str(CHILD)],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            cwd=ws.folder,
            **popen_kwargs(),
        )
    if done.returncode != 0:
        raise SystemExit(f"profile_child.py failed:\n{done.stderr[-3000:]}")
    results = json.loads(done.stdout)
    parts = list(results[0]["parts_ms"])
    table = Table(title=f"fork runner, per command (ms), stack {args.stack}, {args.repeats} runs each")
    phases = list(results[0]["phases_ms"])
    columns = ("command", "exit", "fork to reap", "script", *phases, "profiled", *parts)
    for column in columns:
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            "flask db " + " ".join(r["argv"][1:]),
            str(r["status"]),
            f"{r['wall_ms']:.1f}",
            f"{r['exec_ms']:.1f}",
            *(f"{r['phases_ms'][p]:.1f}" for p in phases),
            f"{r['profiled_ms']:.1f}",
            *(f"{r['parts_ms'][p]:.1f}" for p in parts),
        )
    console.print(table)
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    console.print(f"machine: {os.cpu_count()} CPUs, load average at start {load_start}, at end {load_end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
