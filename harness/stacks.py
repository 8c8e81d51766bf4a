"""Stacks: named requirement lists, each installed into a virtual environment of its own.

The project under test never runs in the harness's environment: a claim about the article's
install line must be checked against exactly what that line installs. Environments are built
with uv and cached under a key made of the requirements and the interpreter, so a warm run
pays nothing; a file lock makes concurrent builders (xdist workers, two tox runs) safe.

As root, scenario code runs as an unprivileged account (`harness.account`), which must read and
run the environments: the cache then lives in /var/cache/migrate-harness (``~/.cache`` is under
/root, mode 700), uv builds with umask 022, the interpreter is one that account can run, and
every environment is checked by running its python as that account.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import uv

from harness.account import popen_kwargs, scenario_account

DEFAULT_STACKS_FILE = Path(__file__).resolve().parent.parent / "stacks.toml"
BUILD_TIMEOUT = 900
# NAME=PATH: use the environment at PATH (a copy of a built one, with its migrate-harness.json) for
# stack NAME instead of building or caching one. `tox -e mutants` points the harness at a copy into
# which it seeds faults; the one place a stack's path can be overridden.
ENV_OVERRIDE = "MIGRATE_HARNESS_STACK_ENV"
CACHE_ENV = "MIGRATE_HARNESS_CACHE"
# As root: a cache the scenario account can read (FHS: an application's cached data).
ROOT_CACHE = Path("/var/cache/migrate-harness")


class StackError(Exception):
    """A stack that cannot be defined or installed; the message says which and why."""


@dataclass(frozen=True)
class Stack:
    name: str
    description: str
    requirements: tuple[str, ...]
    scenarios: bool = True  # whether `--stack all` runs the scenario library on it


@dataclass(frozen=True)
class StackEnv:
    """An installed stack: where its interpreter lives and what it installed."""

    stack: Stack
    path: Path
    versions: dict[str, str]  # distribution name -> version, as installed
    python_version: str

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    def executable(self, name: str) -> Path:
        return self.bin_dir / name


def load_stacks(path: Path = DEFAULT_STACKS_FILE) -> dict[str, Stack]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StackError(f"{path}: cannot read the stacks file: {exc}") from None
    stacks = {}
    for name, table in data.items():
        reqs = table.get("requirements")
        if not isinstance(reqs, list) or not all(isinstance(r, str) for r in reqs):
            raise StackError(f"{path}: stack [{name}] needs `requirements`, a list of requirement strings")
        stacks[name] = Stack(
            name, str(table.get("description", "")), tuple(reqs), bool(table.get("scenarios", True))
        )
    return stacks


def default_cache_root() -> Path:
    """$MIGRATE_HARNESS_CACHE; else, as root, /var/cache/migrate-harness (readable by the account
    scenario code runs as); else $XDG_CACHE_HOME or ~/.cache, plus /migrate-harness."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return ROOT_CACHE
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "migrate-harness"


@functools.cache
def base_python() -> str:
    """The interpreter stacks are built on: the one the harness runs on, outside any virtual
    environment.

    As root, the scenario account must be able to run it, and the harness's own often sits under
    /root (pyenv, uv's managed Pythons), which that account cannot enter. Then the first
    interpreter of the same minor version on PATH (or in /usr/local/bin, /usr/bin) that it can run
    is taken instead, and the stacks' names and records carry that interpreter's version.
    """
    own = getattr(sys, "_base_executable", sys.executable)
    account = scenario_account()
    if account is None or _runs_as_account(own):
        return own
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    folders = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/local/bin", "/usr/bin"]
    for folder in dict.fromkeys(folders):
        candidate = os.path.join(folder, f"python{minor}")
        if os.path.isfile(candidate) and _runs_as_account(candidate):
            return candidate
    raise StackError(
        f"no Python {minor} that the account {account.name!r}, which runs scenario code as root, can "
        f"run: {own} is out of its reach. What to do: install Python {minor} system-wide "
        f"(e.g. apt-get install python{minor}), or run the harness on an interpreter outside /root."
    )


def _runs_as_account(python: str) -> bool:
    """Whether the scenario account (as root) can start `python` and it is this minor version."""
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    return _python_version(python, as_account=True).startswith(f"{minor}.")


def _python_version(python: str, as_account: bool = False) -> str:
    """The interpreter's version, asked of it (as the scenario account if `as_account` and the
    harness is root); "" if it cannot be run."""
    try:
        out = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            **(popen_kwargs() if as_account else {}),
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _env_key(stack: Stack, python_version: str) -> str:
    # The date is part of the key: requirement ranges resolve to newer releases over time, and
    # a stack is meant to be what a reader installing today gets. uv's own cache makes the
    # daily rebuild cost about a second.
    # "bytecode": environments made before they were compiled at install are rebuilt.
    blob = json.dumps([stack.requirements, python_version, sys.platform, _today(), "bytecode"])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _run_uv(args: list[str], stack: Stack) -> str:
    cmd = [uv.find_uv_bin(), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    try:
        # umask 022: the environment is readable by every account (the scenario account as root)
        # whatever umask the harness runs with.
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env, umask=0o022
        )
    except subprocess.TimeoutExpired:
        raise StackError(f"stack {stack.name!r}: `uv {args[0]}` took over {BUILD_TIMEOUT}s") from None
    if done.returncode != 0:
        raise StackError(
            f"stack {stack.name!r}: `uv {' '.join(args[:2])}` failed (exit {done.returncode}).\n"
            f"{done.stderr.strip()}\nCheck the stack's requirements in stacks.toml."
        )
    return done.stdout


def ensure_env(stack: Stack, cache_root: Path | None = None, python: str | None = None) -> StackEnv:
    """Return the stack's environment, building it first if the cache does not hold it."""
    name, _, override = os.environ.get(ENV_OVERRIDE, "").partition("=")
    if override and name == stack.name:
        try:
            data = json.loads((Path(override) / "migrate-harness.json").read_text())
        except (OSError, ValueError) as exc:
            raise StackError(f"{ENV_OVERRIDE}: {override} is not a stack environment: {exc}") from None
        return StackEnv(stack, Path(override), versions=data["versions"], python_version=data["python"])
    python = python or base_python()
    py_version = _python_version(python)
    if not py_version:
        raise StackError(f"stack {stack.name!r}: cannot run the interpreter {python}")
    root = (cache_root or default_cache_root()) / "stacks"
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    # The interpreter's version is in the name: environments of one stack for two interpreters
    # live side by side, and pruning only ever looks at the same stack on the same interpreter.
    family = f"{stack.name}-py{py_version}-"
    path = root / f"{family}{_env_key(stack, py_version)}"
    marker = path / "migrate-harness.json"
    with open(root / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _hold(path)  # in use from now until this process ends: never pruned under it
        if not marker.exists():
            _prune(root, family, keep=path)
            _run_uv(["venv", "--quiet", "--python", python, str(path)], stack)
            # Compiled at install, as pip does for a reader: as root, commands run as an account
            # that cannot write __pycache__ here, so without it every command compiled Flask,
            # SQLAlchemy and Alembic from source again (a subprocess command took 0.9 s, not 0.5).
            python_bin = str(path / "bin" / "python")
            _run_uv(
                [
                    "pip",
                    "install",
                    "--quiet",
                    "--compile-bytecode",
                    "--python",
                    python_bin,
                    *stack.requirements,
                ],
                stack,
            )
            freeze = _run_uv(["pip", "freeze", "--python", str(path / "bin" / "python")], stack)
            versions = dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)
            marker.write_text(json.dumps({"versions": versions, "python": py_version}, indent=1))
    data = json.loads(marker.read_text())
    return StackEnv(stack=stack, path=path, versions=data["versions"], python_version=data["python"])


@functools.cache
def stdlib_folder(python: Path) -> str:
    """The standard library folder of a stack's interpreter ("" if it cannot be asked): a
    traceback through contextlib names it, and it depends on the machine (pyenv's under /root, a
    system one under /usr/lib; as root the stacks run on the latter), so observations replace it."""
    done = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def runnable(env: StackEnv) -> StackEnv:
    """`env`, once its python has run as the account that will run scenario code (as root, the
    scenario account): a cache or a copy under a private folder fails here with one line."""
    if scenario_account() is None or _python_version(str(env.executable("python")), as_account=True):
        return env
    account = scenario_account()
    who = f"the account {account.name!r} that runs scenario code as root" if account else "this user"
    raise StackError(
        f"stack {env.stack.name!r}: {who} cannot run {env.executable('python')}. "
        f"What to do: point {CACHE_ENV} (or {ENV_OVERRIDE}) at a folder that account can read and "
        "enter, such as one under /var/cache."
    )


# Environments this process uses: a shared lock on each one's ``.inuse`` file, held until the
# process exits (the kernel releases it even after kill -9).
_IN_USE: dict[Path, IO[str]] = {}


def _hold(path: Path) -> None:
    if path not in _IN_USE:
        handle = open(f"{path}.inuse", "w")  # noqa: SIM115 (held open on purpose)
        fcntl.flock(handle, fcntl.LOCK_SH)
        _IN_USE[path] = handle


def release_all() -> None:
    """Give up this process's claims on its environments (for tests; exiting does the same)."""
    for handle in _IN_USE.values():
        handle.close()
    _IN_USE.clear()


def _prune(root: Path, family: str, keep: Path) -> None:
    """Remove older environments of one stack and interpreter that no process uses: a session
    that crossed midnight, or another xdist worker, keeps its environment while it runs."""
    for old in root.glob(f"{family}*"):
        if old == keep or not old.is_dir():
            continue
        with open(f"{old}.inuse", "w") as claim:
            try:
                fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            shutil.rmtree(old, ignore_errors=True)
            for leftover in (Path(f"{old}.inuse"), Path(f"{old}.lock")):
                leftover.unlink(missing_ok=True)


@dataclass(frozen=True)
class BuildResult:
    """One stack's outcome in a parallel build: its environment, or why it could not be had."""

    name: str
    seconds: float
    env: StackEnv | None = None
    error: str | None = None


def ensure_envs(
    stacks: Iterable[Stack],
    cache_root: Path | None = None,
    python: str | None = None,
    workers: int | None = None,
) -> dict[str, BuildResult]:
    """Build (or find in the cache) several stacks at once, in threads.

    Threads are enough: the work is uv's subprocesses, which download and install in parallel on
    their own; the per-environment file lock in `ensure_env` keeps two builders of one stack
    (a thread here, an xdist worker, another tox run) from colliding. One stack's failure does
    not stop the others; it is returned as that stack's error.
    """
    stacks = list(stacks)

    def build(stack: Stack) -> BuildResult:
        start = time.perf_counter()
        try:
            env = ensure_env(stack, cache_root, python)
        except StackError as exc:
            return BuildResult(stack.name, time.perf_counter() - start, error=str(exc))
        return BuildResult(stack.name, time.perf_counter() - start, env=env)

    if not stacks:
        return {}
    with ThreadPoolExecutor(max_workers=workers or min(len(stacks), 8)) as pool:
        return {result.name: result for result in pool.map(build, stacks)}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.stacks [NAME...]`: build the stacks in parallel and print what each took."""
    parser = argparse.ArgumentParser(prog="python -m harness.stacks", description=main.__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="stacks to build (default: all)")
    parser.add_argument("--stacks-file", type=Path, default=DEFAULT_STACKS_FILE)
    parser.add_argument("--workers", type=int, default=None, help="parallel builds (default: one per stack)")
    args = parser.parse_args(argv)
    try:
        stacks = load_stacks(args.stacks_file)
    except StackError as exc:
        parser.error(str(exc))
    unknown = sorted(set(args.names) - set(stacks))
    if unknown:
        parser.error(f"unknown stack(s) {unknown}; {args.stacks_file} defines {sorted(stacks)}")
    chosen = [stacks[n] for n in args.names] if args.names else list(stacks.values())
    start = time.perf_counter()
    results = ensure_envs(chosen, workers=args.workers)
    failed = 0
    for result in results.values():
        if result.env is not None:
            keys = ("flask", "flask-sqlalchemy", "flask-migrate", "alembic", "sqlalchemy")
            pins = " ".join(f"{k}={result.env.versions.get(k, '-')}" for k in keys)
            print(f"{result.name:10} {result.seconds:6.1f}s  {pins}  ({result.env.path})")
        else:
            failed += 1
            print(f"{result.name:10} {result.seconds:6.1f}s  FAILED\n{result.error}", file=sys.stderr)
    print(f"{len(results)} stack(s) in {time.perf_counter() - start:.1f}s, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
