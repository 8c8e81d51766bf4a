"""Date stacks: the article's install line as a reader resolved it on a given day.

A reader who ran the article's `pipenv install` on day D got the newest releases uploaded by the
end of D; uv's ``--exclude-newer`` reproduces that. Two things differ from the reader's machine
and are named in every report (`EXEMPTIONS`, `SEED`):

- the interpreter is today's (Python 3.11): a package whose releases of D have no wheel for it and
  do not build from source is allowed a later upload date, up to its first release that installs;
- pipenv's virtualenv seeded setuptools into every environment (Flask before 2.1 finds `flask db`
  through pkg_resources); uv seeds nothing, so setuptools as of D is installed beside the line,
  without being added to the line the claims see.

A resolution is the full list of pins; environments are cached by it (not by the date), so the
many days that resolve alike share one environment. Environments are built from the pins with
``--no-deps``: what is installed is exactly the resolution, also for the culprit runs that swap a
single pin.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import uv

from harness.stacks import Stack, StackEnv, StackError, base_python, default_cache_root

Pins = tuple[tuple[str, str], ...]  # sorted (normalised name, version)
UV_TIMEOUT = 900
INDEX = "https://pypi.org"  # the index uv uses (its default); only its JSON API is read


@dataclass(frozen=True)
class Exemption:
    package: str
    until: date  # before this day the package may come from releases uploaded up to it
    reason: str

    def flag(self, day: date) -> list[str]:
        if day >= self.until:
            return []
        return ["--exclude-newer-package", f"{self.package}={self.until.isoformat()}T00:00:00Z"]


# The fewest exemptions that make the line install on Python 3.11 on every day since 2020
# (found by installing the line on each visited day; each one is needed, see docs/timeline.md).
EXEMPTIONS = (
    Exemption(
        "psycopg2-binary",
        date(2022, 10, 26),
        "releases before 2.9.5 (uploaded 2022-10-25) have no wheel for Python 3.11 and their source "
        "does not build on it (`Py_TYPE(...) = ...`: lvalue required); so before 2022-10-26 the date "
        "stack takes 2.9.5, the first release that installs on both",
    ),
    Exemption(
        "greenlet",
        date(2022, 8, 26),
        "releases before 1.1.3 (uploaded 2022-08-25) have no wheel for Python 3.11 and their source does "
        "not build on it (SQLAlchemy 1.4 requires greenlet); so before 2022-08-26 the date stack takes "
        "1.1.3, the first release with a Python 3.11 wheel",
    ),
)
SEED = (
    "setuptools",
    "pipenv's virtualenv seeded setuptools into every environment (Flask < 2.1 finds `flask db` "
    "through pkg_resources); uv seeds nothing, so setuptools as of the day is installed beside the line",
)


@dataclass(frozen=True)
class Resolution:
    day: date
    pins: Pins | None  # None: the line does not resolve on this day
    error: str | None = None


def pins_key(pins: Pins) -> str:
    return hashlib.sha256(json.dumps(list(pins)).encode()).hexdigest()[:12]


def _uv(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    try:
        return subprocess.run(
            [uv.find_uv_bin(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=UV_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"`uv {args[0]}` took over {UV_TIMEOUT}s")


def parse_pins(text: str) -> Pins:
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins.append((name.strip().lower().replace("_", "-"), version.strip()))
    return tuple(sorted(pins))


def exemption_flags(day: date) -> list[str]:
    return [flag for ex in EXEMPTIONS for flag in ex.flag(day)]


def active_exemptions(day: date) -> list[Exemption]:
    return [ex for ex in EXEMPTIONS if day < ex.until]


def resolve(line: tuple[str, ...], day: date, python_version: str = "3.11") -> Resolution:
    """The pins `uv pip compile` gives for the line (and the seed) with nothing newer than day D's end."""
    cutoff = (day + timedelta(days=1)).isoformat() + "T00:00:00Z"
    done = _uv(
        [
            "pip", "compile", "-", "--quiet", "--no-header", "--no-annotate",
            "--python-version", python_version, "--exclude-newer", cutoff, *exemption_flags(day),
        ],
        stdin="\n".join([*line, SEED[0]]) + "\n",
    )  # fmt: skip
    if done.returncode != 0:
        first = next((ln for ln in done.stderr.splitlines() if ln.strip()), f"exit {done.returncode}")
        return Resolution(day, None, f"`uv pip compile` on {day}: {first.strip()}")
    return Resolution(day, parse_pins(done.stdout))


def compile_today(requirements: tuple[str, ...], python_version: str = "3.11") -> Pins | None:
    """What a requirement list resolves to today (as `harness.stacks` installs an era stack)."""
    done = _uv(
        [
            "pip",
            "compile",
            "-",
            "--quiet",
            "--no-header",
            "--no-annotate",
            "--python-version",
            python_version,
        ],
        stdin="\n".join(requirements) + "\n",
    )
    return parse_pins(done.stdout) if done.returncode == 0 else None


def build_env(
    name: str, line: tuple[str, ...], pins: Pins, cache_root: Path | None = None, python: str | None = None
) -> StackEnv:
    """The environment holding exactly `pins` (cached by them); StackError says why it cannot be built.

    The returned stack's requirements are the article's line: the claims judge the line, and the
    seed and the exemptions are the machine's, reported beside the verdicts.
    """
    python = python or base_python()
    root = (cache_root or default_cache_root()) / "timeline"
    root.mkdir(parents=True, exist_ok=True)
    path = root / pins_key(pins)
    marker = path / "migrate-harness.json"
    stack = Stack(name, f"the article's line resolved as {name}", tuple(line), scenarios=False)
    with open(root / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            failed = path / "failed.txt"
            if failed.exists():
                raise StackError(failed.read_text())
            done = _uv(["venv", "--quiet", "--python", python, str(path)])
            if done.returncode == 0:
                reqs = [f"{n}=={v}" for n, v in pins]
                done = _uv(
                    [
                        "pip",
                        "install",
                        "--quiet",
                        "--no-deps",
                        "--compile-bytecode",
                        "--python",
                        str(path / "bin/python"),
                        *reqs,
                    ]
                )
            if done.returncode != 0:
                message = _install_error(name, done.stderr)
                failed.write_text(message)  # a build that failed once fails the same way: keep the reason
                raise StackError(message)
            marker.write_text(json.dumps({"versions": dict(pins), "python": _python_version(path)}, indent=1))
    data = json.loads(marker.read_text())
    return StackEnv(stack=stack, path=path, versions=data["versions"], python_version=data["python"])


def _python_version(path: Path) -> str:
    out = subprocess.run(
        [str(path / "bin/python"), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def _install_error(name: str, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    cause = next(
        (ln for ln in lines if "Failed to build" in ln or "error:" in ln.lower()), lines[0] if lines else ""
    )
    return f"{name}: the line does not install: {cause}\n" + "\n".join(lines[-15:])


@cache
def _releases(package: str) -> dict[str, list[dict]]:
    url = f"{INDEX}/pypi/{package}/json"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return json.load(response).get("releases", {})
    except (OSError, ValueError):
        return {}


def upload_time(package: str, version: str) -> str:
    """When a release was uploaded (its earliest file), from the index's JSON API; "" if unknown."""
    times = [
        f["upload_time_iso_8601"]
        for f in _releases(package).get(version, [])
        if f.get("upload_time_iso_8601")
    ]
    return min(times)[:19] + "Z" if times else ""


@cache
def upload_days(package: str) -> list[date]:
    """Every day (UTC) a file of a release of `package` was uploaded, from the index's JSON API (the
    days its resolution under --exclude-newer can change); [] if the index cannot be read."""
    days = {
        date.fromisoformat(f["upload_time_iso_8601"][:10])
        for files in _releases(package).values()
        for f in files
        if f.get("upload_time_iso_8601")
    }
    return sorted(days)
