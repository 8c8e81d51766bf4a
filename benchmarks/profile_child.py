"""Per-command profile of the fork runner's child. Runs in the STACK's interpreter.

Started as ``<stack>/bin/python profile_child.py`` with a JSON job on stdin ({"runner_dir",
"commands": [{"argv", "cwd", "env"}], "repeats"}). It sets up exactly as the fork server does
(``forkserver_main.preimport``, ``gc.freeze``), then for each command forks `repeats` children
that run it as the server's children do, and one more under cProfile. Printed as JSON: per
command, the median wall time from fork to reap, the median time inside the console script, and
from the profiled child the cumulative time of the parts the issue names (login, app import,
logging setup, plugin lookup, .flaskenv). Standard library only, like the fork server.
"""

import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import time

# (label, test on a profile entry (file, function)): the largest cumulative time among the entries
# that match is the part's time (cumulative time already counts recursion once). login:
# psycopg2.connect; app import: Flask's locate_app; logging: logging.config.fileConfig (env.py);
# plugins: Flask's _load_plugin_commands (entry points); .flaskenv: Flask's load_dotenv; env.py:
# Alembic's run_env (holds login and logging for commands that reach the database).
PARTS = (
    ("login", lambda f, fn: fn == "connect" and "psycopg2" in f),
    ("app import", lambda f, fn: fn == "locate_app"),
    ("logging", lambda f, fn: fn == "fileConfig"),
    ("plugins", lambda f, fn: fn == "_load_plugin_commands"),
    (".flaskenv", lambda f, fn: fn == "load_dotenv" and "flask" in f),
    ("env.py", lambda f, fn: fn == "run_env"),
)


def _child(fm, command, profile, report):
    child_start = time.perf_counter()  # CLOCK_MONOTONIC: comparable with the parent's readings
    request = {"argv": command["argv"], "cwd": command["cwd"], "env": command["env"]}
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    code, namespace = fm.become_command(request)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    status = 0
    try:
        exec(code, namespace)
    except SystemExit as exc:
        status = fm.exit_status(exc)
    except BaseException:
        status = 1
    if profiler:
        profiler.disable()
    ended = time.perf_counter()
    result = {"exec": ended - started, "status": status, "child_start": child_start}
    result.update(exec_start=started, exec_end=ended)
    if profiler:
        stats = pstats.Stats(profiler).stats
        result["parts"] = {
            label: max((entry[3] for key, entry in stats.items() if test(key[0], key[2])), default=0.0)
            for label, test in PARTS
        }
    os.write(report, (json.dumps(result) + "\n").encode())
    fm.finish(status)


def _fork(fm, command, profile):
    read, write = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(fm, command, profile, write)
    forked = time.perf_counter()
    os.close(write)
    os.waitpid(pid, 0)
    reaped = time.perf_counter()
    wall = reaped - started
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    result = json.loads(data)
    result["wall"] = wall
    # fork: the parent's os.fork (copying the page tables); to child: until the child runs;
    # setup: become_command (session, folder, environment, the console script compiled);
    # exit: finish() (threads, atexit, the child's own gc, flushing), _exit, the kernel's
    # teardown of the copied address space, and the parent waking from waitpid.
    result["phases"] = {
        "fork": forked - started,
        "to child": result["child_start"] - started,
        "setup": result["exec_start"] - result["child_start"],
        "exit": reaped - result["exec_end"],
    }
    return result


def main():
    job = json.load(sys.stdin)
    sys.path.insert(0, job["runner_dir"])
    import forkserver_main as fm  # noqa: PLC0415 (the harness's folder is known only now)

    fm.preimport()
    gc.collect()
    gc.freeze()
    out = []
    for command in job["commands"]:
        runs = [_fork(fm, command, profile=False) for _ in range(job["repeats"])]
        profiled = _fork(fm, command, profile=True)
        out.append(
            {
                "argv": command["argv"][1:],
                "status": runs[0]["status"],
                "wall_ms": statistics.median(r["wall"] for r in runs) * 1000,
                "exec_ms": statistics.median(r["exec"] for r in runs) * 1000,
                "phases_ms": {
                    k: statistics.median(r["phases"][k] for r in runs) * 1000 for k in runs[0]["phases"]
                },
                "profiled_ms": profiled["exec"] * 1000,
                "parts_ms": {k: v * 1000 for k, v in profiled["parts"].items()},
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
