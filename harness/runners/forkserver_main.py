"""Fork server for ``flask db`` commands. Runs in the STACK's interpreter, never the harness's.

Started as ``<stack>/bin/python -c <this file's text>`` with the reader's environment and, when the
harness is root, as the unprivileged scenario account (``subprocess``'s ``user``/``group``/
``extra_groups``/``umask``), so that every child it forks is that account too. It imports
the libraries every ``flask db`` command needs (Flask, SQLAlchemy, Alembic, psycopg2...) once,
but never the project's app or models, then serves one request per line on its stdin: fork a
child, which becomes a fresh ``flask`` process in all that matters (own working folder, own
environment, own stdout/stderr, own session) and runs the stack's real ``flask`` console script,
so Flask's own ``.flaskenv`` handling, exit codes and tracebacks apply. The app and the models
are imported by each child, from scratch, exactly as in a new process.

Why this file is standalone: it must run on every stack (Python 3.11, Flask 1.1..3.x,
SQLAlchemy 1.3..2.x, Alembic 1.4..1.20) and may import only the standard library and the
stack's own packages. The protocol is one JSON object per line in each direction:

    -> {"argv": [...], "cwd": "...", "env": {...}, "timeout": 120.0}
    <- {"child": 1234}
    <- {"exit_code": 0, "timed_out": false, "stdout": "<base64>", "stderr": "<base64>"}

The child exits through the interpreter's normal shutdown (SystemExit handling, atexit, stream
flushing), because ``serve`` returns in the child and the console script runs at module level.
"""

import atexit
import base64
import contextlib
import gc
import importlib
import json
import os
import random
import select
import signal
import sys
import time
import types

# What a `flask db` command imports before it reaches the project's code. Missing ones are
# skipped: the child then fails on them exactly as the real command would.
PREIMPORT = (
    "click",
    "dotenv",
    "werkzeug",
    "jinja2",
    "flask",
    "flask.cli",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.ext.declarative",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.postgresql.psycopg2",
    "psycopg2",
    "psycopg2.extensions",
    "psycopg2.extras",
    "flask_sqlalchemy",
    "mako.template",
    "logging.config",
    "alembic",
    "alembic.config",
    "alembic.command",
    "alembic.context",
    "alembic.op",
    "alembic.autogenerate",
    "alembic.runtime.environment",
    "alembic.runtime.migration",
    "alembic.script",
    "alembic.ddl.postgresql",
    "flask_migrate",
    "flask_migrate.cli",
    "flask_sqlalchemy.cli",
)


def preimport():
    loaded, missing = [], []
    for name in PREIMPORT:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # an absent or broken library: the child will say so itself
            missing.append(f"{name}: {type(exc).__name__}: {exc}")
    return loaded, missing


def _wait(pid, timeout):
    """Wait for `pid` up to `timeout` seconds; kill its session at the limit. -> (status, timed_out)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    deadline = time.monotonic() + timeout
    if pidfd is not None:
        try:
            ready, _, _ = select.select([pidfd], [], [], max(timeout, 0))
        finally:
            os.close(pidfd)
        if ready:
            return os.waitpid(pid, 0)[1], False
    else:  # no pidfd on this kernel: poll
        delay = 0.0005
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status, False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the child leads its own session, like start_new_session
    return os.waitpid(pid, 0)[1], True


def _read_all(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _output_file(name):
    if hasattr(os, "memfd_create"):
        return os.memfd_create(name)
    import tempfile

    handle, path = tempfile.mkstemp()
    os.unlink(path)
    return handle


def serve(requests, replies):
    """The server loop. Returns only in a forked child, with the request it must run."""
    while True:
        line = requests.readline()
        if not line:
            return None  # the harness closed our stdin: stop
        request = json.loads(line)
        if request.get("stop"):
            return None
        out, err = _output_file("stdout"), _output_file("stderr")
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.close(out)
            os.close(err)
            return request
        # The harness learns the child first, so that it can end it if it is interrupted.
        replies.write((json.dumps({"child": pid}) + "\n").encode())
        replies.flush()
        status, timed_out = _wait(pid, float(request.get("timeout", 120.0)))
        reply = {
            "exit_code": None if timed_out else os.waitstatus_to_exitcode(status),
            "timed_out": timed_out,
            "stdout": base64.b64encode(_read_all(out)).decode("ascii"),
            "stderr": base64.b64encode(_read_all(err)).decode("ascii"),
        }
        replies.write((json.dumps(reply) + "\n").encode())
        replies.flush()


def become_command(request):
    """In the child: take on the command's session, folder, environment and argv."""
    os.setsid()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    random.seed()  # a new process would not share its parent's random state
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    # A script's folder heads sys.path, symlinks resolved, as for `<venv>/bin/flask`.
    sys.path[0] = os.path.dirname(os.path.realpath(script))
    with open(script, "rb") as handle:
        code = compile(handle.read(), script, "exec")
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__
    main.__cached__ = None
    sys.modules["__main__"] = main
    return code, main.__dict__


def start():
    # The protocol keeps private copies of stdin/stdout; fds 0 and 1 become /dev/null so that a
    # child starts with the streams a command run by the harness has (stdin from /dev/null).
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.path[0] = os.path.dirname(os.path.abspath(sys.executable))  # the venv's bin, never this folder
    loaded, missing = preimport()
    # Everything alive now lives as long as the server: keep the collector of each child from
    # walking (and so copying page by page) what the parent imported.
    gc.collect()
    gc.freeze()
    hello = {"ready": True, "pid": os.getpid(), "python": sys.version.split()[0]}
    hello.update(preimported=loaded, missing=missing)
    replies.write((json.dumps(hello) + "\n").encode())
    replies.flush()
    return serve(requests, replies)


def exit_status(request_exit):
    """The status the interpreter exits with for a SystemExit, printing a non-integer code."""
    code = request_exit.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    if sys.stderr is not None:
        sys.stderr.write(f"{code}\n")
    return 1


def finish(status):
    """Leave the child as Py_FinalizeEx would, as far as anyone can observe, then os._exit.

    The observable parts are kept, in the interpreter's order: waiting for non-daemon threads,
    atexit callbacks (logging's flush among them), finalizers of the command's own garbage,
    flushing stdout and stderr (exit status 120 if that fails). Skipped is the teardown of every
    module: in a forked child it touches, and so copies, each page of the parent's objects, and
    measured at ~100 ms per command, most of a command's time.
    """
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    atexit._run_exitfuncs()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            status = 120
    os._exit(status)


if __name__ == "__main__":
    _job = start()
    if _job is None:
        sys.exit(0)
    _code, _namespace = become_command(_job)
    del _job
    try:
        exec(_code, _namespace)
        _status = 0
    except SystemExit as _request:
        _status = exit_status(_request)
    except KeyboardInterrupt:
        raise  # the interpreter's own handling: death by SIGINT
    except BaseException as _exc:
        # What the interpreter does with an uncaught exception, minus this file's frame, so the
        # traceback starts at the console script as in a real `flask` process.
        # (The default hook prints the exception's own __traceback__, so that is what is trimmed.)
        _tb = _exc.__traceback__.tb_next if _exc.__traceback__ is not None else None
        sys.excepthook(type(_exc), _exc.with_traceback(_tb), _tb)
        del _exc, _tb
        _status = 1
    finish(_status)
