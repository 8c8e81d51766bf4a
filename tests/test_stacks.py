"""Stacks: the stacks file says what it pins and why, and the environments build as it says.

The build tests install real packages with uv (into a temporary cache; uv's own download cache
makes them quick after the first run).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from harness import stacks
from harness.stacks import DEFAULT_STACKS_FILE, Stack, ensure_envs, load_stacks

ERA_STACKS = {
    # the issue's list: stack -> distribution -> minor version
    "era2020": {
        "Flask": "1.1",
        "Flask-SQLAlchemy": "2.4",
        "Flask-Migrate": "2.5",
        "alembic": "1.4",
        "SQLAlchemy": "1.3",
    },
    "mid2021": {
        "Flask": "2.0",
        "Flask-SQLAlchemy": "2.5",
        "Flask-Migrate": "3.1",
        "alembic": "1.8",
        "SQLAlchemy": "1.4",
    },
    "mid2022": {
        "Flask": "2.2",
        "Flask-SQLAlchemy": "3.0",
        "Flask-Migrate": "3.1",
        "alembic": "1.9",
        "SQLAlchemy": "1.4",
    },
    "mid2023": {
        "Flask": "2.3",
        "Flask-SQLAlchemy": "3.0",
        "Flask-Migrate": "4.0",
        "alembic": "1.12",
        "SQLAlchemy": "2.0",
    },
}


def test_the_era_stacks_pin_the_issue_versions_and_their_descriptions_say_so():
    defined = load_stacks()
    for name, pins in ERA_STACKS.items():
        reqs = {Requirement(r).name.lower(): Requirement(r) for r in defined[name].requirements}
        for dist, minor in pins.items():
            assert str(reqs[dist.lower()].specifier) == f"=={minor}.*", (name, dist)
            assert f"{dist} {minor}" in defined[name].description, (name, dist)


def test_article_and_current_are_kept():
    defined = load_stacks()
    assert {"article", "current"} <= set(defined)
    # the article stack is the article's install line, unpinned
    assert all(not Requirement(r).specifier for r in defined["article"].requirements)


def _uncommented_pins(text: str, described: set[str]) -> list[str]:
    """Requirement lines with a version specifier and no comment above them (a run of pinned
    lines may share one comment); pins the stack's description names need none."""
    missing, covered = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            covered = True
        elif stripped.startswith('"'):
            req = Requirement(stripped.strip('",'))
            if not req.specifier:
                covered = False
            elif not covered and req.name.lower() not in described:
                missing.append(stripped)
        else:
            covered = False
    return missing


def test_every_pin_carries_a_comment():
    text = DEFAULT_STACKS_FILE.read_text()
    described = {d.lower() for pins in ERA_STACKS.values() for d in pins}
    assert _uncommented_pins(text, described) == []


def test_the_comment_check_can_fail():
    text = '[x]\nrequirements = [\n    "Flask",\n    "Werkzeug<2",\n]\n'
    assert _uncommented_pins(text, set()) == ['"Werkzeug<2",']
    assert _uncommented_pins(text.replace('    "Werkzeug', '    # why\n    "Werkzeug'), set()) == []


def test_stacks_file_parses_as_toml_with_one_table_per_stack():
    data = tomllib.loads(DEFAULT_STACKS_FILE.read_text())
    assert set(data) == set(load_stacks())


def test_parallel_build_returns_each_stack_and_a_failure_does_not_stop_the_others(tmp_path):
    good_a = Stack("a", "", ("python-dotenv",))
    good_b = Stack("b", "", ("python-dotenv<2",))
    bad = Stack("bad", "", ("python-dotenv ==== 1",))  # not a requirement: uv refuses it locally
    results = ensure_envs([good_a, good_b, bad], cache_root=tmp_path)
    assert set(results) == {"a", "b", "bad"}
    assert results["a"].env is not None and "python-dotenv" in results["a"].env.versions
    assert results["b"].env is not None and results["b"].env.versions["python-dotenv"].split(".")[0] in "01"
    assert results["bad"].env is None and "stack 'bad'" in (results["bad"].error or "")
    assert all(r.seconds >= 0 for r in results.values())


def test_two_builders_of_one_stack_share_one_environment(tmp_path):
    same = Stack("same", "", ("python-dotenv",))
    first = ensure_envs([same], cache_root=tmp_path)["same"]
    threads = [stacks.ensure_env(same, tmp_path) for _ in range(2)]
    assert {t.path for t in threads} == {first.env.path}  # type: ignore[union-attr]
    assert [p.name for p in (tmp_path / "stacks").iterdir() if p.is_dir()] == [first.env.path.name]  # type: ignore[union-attr]


def test_cli_rejects_an_unknown_stack(capsys):
    with pytest.raises(SystemExit) as exc:
        stacks.main(["no-such-stack"])
    assert exc.value.code == 2
    assert "unknown stack(s) ['no-such-stack']" in capsys.readouterr().err


def test_every_stack_installs_what_it_pins():
    """The real stacks, from the shared cache: each installed version satisfies its pin."""
    results = ensure_envs(load_stacks().values())
    problems = []
    for name, result in results.items():
        if result.env is None:
            problems.append(f"{name}: {result.error}")
            continue
        for text in result.env.stack.requirements:
            req = Requirement(text)
            installed = result.env.versions.get(re.sub(r"[-_.]+", "-", req.name).lower())
            if installed is None:
                problems.append(f"{name}: {req.name} not installed")
            elif installed is not None and not req.specifier.contains(installed, prereleases=True):
                problems.append(f"{name}: {req.name} {installed} outside {req.specifier}")
    assert problems == []


OTHER_PYTHON = "/root/.pyenv/versions/3.12.1/bin/python3"


@pytest.mark.skipif(not Path(OTHER_PYTHON).exists(), reason=f"needs a second interpreter at {OTHER_PYTHON}")
def test_two_interpreters_share_the_cache_without_deleting_each_others_environments(tmp_path):
    stack = Stack("two", "", ("python-dotenv",))
    mine = stacks.ensure_env(stack, tmp_path, python=sys.executable)
    other = stacks.ensure_env(stack, tmp_path, python=OTHER_PYTHON)
    stacks.release_all()  # neither is in use any more: still, neither prunes the other
    again = stacks.ensure_env(stack, tmp_path, python=sys.executable)
    assert mine.path != other.path
    assert again.path == mine.path
    assert (mine.path / "bin" / "python").exists() and (other.path / "bin" / "python").exists()
    assert {mine.python_version, other.python_version} == {platform.python_version(), "3.12.1"}
    stacks.release_all()


def test_an_environment_in_use_survives_midnight_and_is_pruned_once_unused(tmp_path, monkeypatch):
    stack = Stack("midnight", "", ("python-dotenv",))
    monkeypatch.setattr(stacks, "_today", lambda: "2026-01-01")
    before = stacks.ensure_env(stack, tmp_path, python=sys.executable)  # held: this process uses it
    monkeypatch.setattr(stacks, "_today", lambda: "2026-01-02")
    after = stacks.ensure_env(stack, tmp_path, python=sys.executable)
    assert after.path != before.path
    assert (before.path / "bin" / "python").exists(), "an environment in use was deleted"
    stacks.release_all()  # the session that used it ended
    monkeypatch.setattr(stacks, "_today", lambda: "2026-01-03")
    latest = stacks.ensure_env(stack, tmp_path, python=sys.executable)
    assert not before.path.exists() and not after.path.exists(), "unused old environments are pruned"
    assert latest.path.exists()
    stacks.release_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only: scenario code then runs as the scenario account")
def test_as_root_environments_are_built_where_and_on_what_the_scenario_account_can_run(tmp_path, monkeypatch):
    """The default cache is /var/cache/migrate-harness, the interpreter one the scenario account
    can run (the harness's own may sit under /root, mode 700); an environment out of its reach
    is refused in one line before any command runs."""
    monkeypatch.delenv(stacks.CACHE_ENV, raising=False)
    assert stacks.default_cache_root() == stacks.ROOT_CACHE
    stack = Stack("reach", "", ("python-dotenv",))
    open_cache = Path(tempfile.mkdtemp(prefix="mh-test-cache-", dir="/tmp"))
    try:
        open_cache.chmod(0o755)
        env = stacks.ensure_env(stack, open_cache)
        assert stacks.runnable(env) is env
        private = stacks.ensure_env(stack, tmp_path)  # pytest's tmp_path: under a 0700 folder
        with pytest.raises(stacks.StackError) as raised:
            stacks.runnable(private)
        message = str(raised.value)
        assert "\n" not in message and "'migrate-harness-scenario'" in message
        assert f"cannot run {private.path}/bin/python" in message and "MIGRATE_HARNESS_CACHE" in message
    finally:
        stacks.release_all()
        shutil.rmtree(open_cache, ignore_errors=True)
