"""The pytest glue translates outcomes and nothing else: unused snapshots, duplicate ids, and `show`
agreeing with pytest on the same scenario."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import STACK_CACHE

from harness.server import Server

ROOT = Path(__file__).resolve().parent.parent


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_unused_snapshots_fail_the_run_and_update_deletes_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    folder = pytester.path / "scenarios" / "__snapshots__"
    folder.mkdir(parents=True)
    (folder / "gone.yaml").write_text("scenario: gone\n")
    result = _run(pytester, "test_ok.py", "scenarios")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unused snapshots*", "  scenarios/__snapshots__/gone.yaml", "*1 unused*"])
    updated = _run(pytester, "test_ok.py", "scenarios", "--snapshot-update")
    assert updated.ret == pytest.ExitCode.OK
    updated.stdout.fnmatch_lines(["*unused snapshots deleted*", "  scenarios/__snapshots__/gone.yaml"])
    assert not (folder / "gone.yaml").exists()
    assert _run(pytester, "test_ok.py", "scenarios").ret == pytest.ExitCode.OK


def test_a_claim_record_of_no_claim_is_unused(pytester: pytest.Pytester) -> None:
    claims = pytester.path / "claims"
    (claims / "verdicts").mkdir(parents=True)
    (claims / "catalogue.yaml").write_text("claims: []\n")
    (claims / "verdicts" / "current.yaml").write_text("gone_claim: holds\n")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = _run(pytester, "test_ok.py", "claims")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unused snapshots*", "  claims/verdicts/current.yaml: gone_claim"])
    _run(pytester, "test_ok.py", "claims", "--snapshot-update")
    assert (claims / "verdicts" / "current.yaml").read_text() == "{}\n"


def test_one_stacks_claims_run_on_one_worker_under_loadgroup(pytester: pytest.Pytester) -> None:
    """`-n 2 --dist loadgroup` keeps a stack's claims on one worker, so the article is probed once
    per stack (pytest 9.2 with xdist 3.8 silently stopped grouping: pytest-dev/pytest-xdist#1386).
    The article is missing, so every claim fails at once, without a probe."""
    claims = pytester.path / "claims"
    claims.mkdir()
    ids = ["install_line", "init_tree", "migrate_one_file", "owners_table", "db_help_listing"]
    entries = "".join(f"  - id: {i}\n    section: s\n    claim: c\n    check: {i}\n" for i in ids)
    (claims / "catalogue.yaml").write_text("claims:\n" + entries)
    result = _run(pytester, "claims", "-n", "2", "--dist", "loadgroup", "-v", "--article", "missing.txt")
    workers: dict[str, set[str]] = {}
    for line in result.stdout.lines:
        if line.startswith("[gw") and "catalogue.yaml::" in line:
            stack = line.split("[")[-1].split("]")[0]
            workers.setdefault(stack, set()).add(line.split("]")[0])
    assert sorted(workers) == ["article", "current"], result.stdout.str()
    assert all(len(w) == 1 for w in workers.values()), workers


def test_duplicate_scenario_ids_are_a_collection_error_naming_both_files(pytester: pytest.Pytester) -> None:
    text = "id: same\ntitle: t\nsteps:\n  - name: s\n    commands: [init]\n"
    for folder in ("a", "b"):
        (pytester.path / "scenarios" / folder).mkdir(parents=True)
        (pytester.path / "scenarios" / folder / "one.yaml").write_text(text)
    result = _run(pytester, "--collect-only", "scenarios")
    result.stdout.fnmatch_lines(
        ["*scenarios/b/one.yaml: scenario id 'same' is already used by scenarios/a/one.yaml.*"]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED or "1 error" in result.stdout.str()


@pytest.mark.needs_server
@pytest.mark.parametrize(
    ("source", "edit", "passes"),
    [
        ("tables/second_model.yaml", None, True),
        # the library's enum scenario without its known_failures entry: the roundtrip fails
        ("enums/enum_table_dropped.yaml", "known_failures", False),
    ],
    ids=["passing", "failing"],
)
def test_show_and_pytest_agree(
    pytester: pytest.Pytester,
    harness_server: Server,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    edit: str | None,
    passes: bool,
) -> None:
    folder = pytester.path / "scenarios"
    (folder / "__snapshots__").mkdir(parents=True)
    original = ROOT / "scenarios" / source
    text = original.read_text()
    if edit:
        lines = text.splitlines(keepends=True)
        start = next(i for i, line in enumerate(lines) if line.startswith(edit))
        end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
        text = "".join(lines[:start] + lines[end:])
    (folder / original.name).write_text(text)
    snap = original.parent / "__snapshots__" / original.name
    (folder / "__snapshots__" / original.name).write_text(snap.read_text())
    url = harness_server.url.render_as_string(hide_password=False)
    monkeypatch.setenv("MIGRATE_HARNESS_CACHE", STACK_CACHE)
    # the URL through the environment, as docs/robustness.md asks (on a command line, scenario
    # code could read it, and the harness warns on stderr)
    monkeypatch.setenv("MIGRATE_HARNESS_PG_URL", url)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--runner", "fork", "scenarios")
    shown = subprocess.run(
        [sys.executable, "-m", "harness.authoring", "show", str(folder / original.name)],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )
    if passes:
        result.assert_outcomes(passed=1)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.endswith("outcome: passed (pytest agrees)\n")
        return
    result.assert_outcomes(failed=1)
    assert shown.returncode == 1
    reason = "invariant 'roundtrip' failed: "
    pytest_line = next(line for line in result.stdout.lines if line.startswith(reason))
    assert shown.stderr.startswith("outcome: FAILED (as pytest reports it)\n")
    assert pytest_line in shown.stderr.splitlines()
