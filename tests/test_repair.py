"""The repair: edits of the article's text, candidates read off failures, the smallest-set search,
the rewrite of drifted passages; and, on the real thing, the repaired article verifying.

The pure parts take the real article text (read where the project reads it, never copied) and
hand-made verdicts and outputs; the search is given a fake `evaluate`. On the real thing (uv
stacks, a throwaway PostgreSQL, the `flask db` CLI): the recorded repair re-proven and searched
afresh, failing the day it no longer verifies on today's releases; and the main job itself, its
record tampered with.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import store
from harness.claims.article import install_line_numbers, load_article, parse_article
from harness.claims.checks import Verdict
from harness.claims.output import UNACCOUNTED, quoted_by, reader_lines, reader_view
from harness.claims.probe import Observations, Ran
from harness.claims.record import RecordError, Splice, applies_to, edit_of, from_data, splice_of, to_data
from harness.claims.repair import (
    Candidate,
    Edit,
    RepairError,
    Trial,
    add_requirement,
    apply_edits,
    candidates_for,
    holds_everywhere,
    run_inputs,
    search,
)
from harness.claims.rewrite import unified_diff
from harness.judge import (
    BROKEN,
    DRIFTED,
    FAIL,
    HOLDS,
    NOT_CHECKED,
    PASS,
    SKIP,
    XFAIL,
    ClaimFinding,
    judge_repair_column,
    judge_repair_record,
    judge_repaired_article,
)
from harness.runners.base import CommandResult

ARTICLE = load_article()

TRACEBACK = """Error: While importing 'flask_migrate_test', an ImportError was raised:

Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/flask/cli.py", line 245, in locate_app
  File "/venv/lib/python3.11/site-packages/flask_sqlalchemy/extension.py", line 665, in _make_engine
  File "/venv/lib/python3.11/site-packages/sqlalchemy/dialects/postgresql/psycopg.py", line 497, in x
    import psycopg
ModuleNotFoundError: No module named 'psycopg'
"""
VERSIONS = {"sqlalchemy": "2.1.3", "flask": "3.1.2", "psycopg2-binary": "2.9.11"}
FLASK_ENV_REASON = "Flask 2.3 removed FLASK_ENV; `flask --debug` or FLASK_DEBUG=1 replace it"


def verdicts(**kinds: str) -> dict[str, Verdict]:
    return {
        claim: Verdict(kind, "", "", reason=FLASK_ENV_REASON if claim == "flask_env" else "")
        for claim, kind in kinds.items()
    }


# -- edits -------------------------------------------------------------------------------------


def test_edits_apply_at_their_line_and_refuse_a_text_that_moved():
    text = "one\ntwo two\nthree\n"
    assert apply_edits(text, [Edit(2, "two", "2")]) == "one\n2 two\nthree\n"
    # line numbers refer to the text as given, whatever order the edits come in
    grown = apply_edits(text, [Edit(1, "one\n", "one\nand a half\n"), Edit(3, "three", "3")])
    assert grown == "one\nand a half\ntwo two\n3\n"
    with pytest.raises(RepairError, match="line 1: expected 'three'"):
        apply_edits(text, [Edit(1, "three", "3")])
    with pytest.raises(RepairError, match="the text has 3 lines"):
        apply_edits(text, [Edit(9, "x", "y")])


def test_edit_size_counts_characters_changed():
    assert Edit(1, "postgresql://", "postgresql+psycopg2://").size == 9
    assert Edit(1, "FLASK_ENV=development", "FLASK_DEBUG=1").size > 9


def test_an_edit_describes_the_words_that_differ_however_much_of_the_line_it_holds():
    url = "DATABASE_URL=postgresql://u:p@localhost/db"
    whole = Edit(3, url, url.replace("postgresql:", "postgresql+psycopg2:"))
    assert whole.describe() == Edit(3, "postgresql://", "postgresql+psycopg2://").describe()
    assert whole.describe() == "line 3: `postgresql` → `postgresql+psycopg2`"
    assert Edit(3, "FLASK_ENV=development", "FLASK_DEBUG=1").describe().endswith("`FLASK_DEBUG=1`")
    assert Edit(3, "init\n", "init\n  out\n").describe() == "after line 3: add 1 line(s)"
    assert Edit(3, "next\n", "  out\nnext\n").describe() == "before line 3: add 1 line(s)"


def test_a_requirement_joins_the_install_line_shell_quoted_and_parses_back():
    edit = add_requirement(ARTICLE, "SQLAlchemy<2.1")
    assert edit.line == install_line_numbers(ARTICLE.text)[-1]
    edited = parse_article(apply_edits(ARTICLE.text, [edit]), ARTICLE.path)
    assert edited.install_packages == (*ARTICLE.install_packages, "SQLAlchemy<2.1")
    assert "'SQLAlchemy<2.1'" in edited.text  # a bare < would be a shell redirection


# -- candidates from failures ------------------------------------------------------------------


def test_a_missing_driver_gives_three_candidates_smallest_first():
    found = candidates_for(ARTICLE, verdicts(install_line=BROKEN), [TRACEBACK], VERSIONS)
    names = [c.name for c in found]
    assert [c.size for c in found] == sorted(c.size for c in found)
    assert names[0].startswith("name the installed driver (psycopg2) in DATABASE_URL")
    assert "add psycopg[binary] to the install line" in names
    assert "bound sqlalchemy to <2.1 on the install line (installed: 2.1.3)" in names
    url = parse_article(apply_edits(ARTICLE.text, found[0].edits), ARTICLE.path).flaskenv["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg2://")


def test_a_named_driver_is_not_proposed_again_and_nothing_comes_from_success():
    named = parse_article(
        ARTICLE.text.replace("DATABASE_URL=postgresql://", "DATABASE_URL=postgresql+psycopg://"), ARTICLE.path
    )
    found = candidates_for(named, verdicts(install_line=BROKEN), [TRACEBACK], VERSIONS)
    assert not any("DATABASE_URL" in c.name for c in found)
    assert candidates_for(ARTICLE, verdicts(install_line=HOLDS), [TRACEBACK], VERSIONS) == []


def test_a_removed_setting_is_replaced_by_the_one_its_message_names():
    (found,) = candidates_for(ARTICLE, verdicts(flask_env=DRIFTED), [], VERSIONS)
    edited = parse_article(apply_edits(ARTICLE.text, found.edits), ARTICLE.path)
    assert edited.flaskenv.get("FLASK_DEBUG") == "1" and "FLASK_ENV" not in edited.flaskenv


# -- the search --------------------------------------------------------------------------------


def cand(name: str, size: int) -> Candidate:
    return Candidate(name, "", (Edit(1, "x", "x" + "y" * size),) if size else ())


def fake_trial(cands: tuple[Candidate, ...], holds: int, broken: int = 0) -> Trial:
    kinds = {f"h{i}": HOLDS for i in range(holds)} | {f"b{i}": BROKEN for i in range(broken)}
    return Trial(cands, verdicts(**kinds))


def test_search_keeps_the_smallest_of_the_best_and_stops_when_nothing_helps():
    url, pin, package, debug = cand("url", 9), cand("pin", 17), cand("package", 18), cand("debug", 12)
    debug = replace(debug, edits=(Edit(2, "a", "b" * 12),))
    holds = {("url",): 17, ("pin",): 17, ("package",): 15, ("url", "debug"): 18}
    offers = {(): [url, pin, package], ("url",): [debug], ("url", "debug"): []}
    calls = []

    def evaluate(sets):
        calls.append([[c.name for c in s] for s in sets])
        return [fake_trial(s, holds.get(tuple(c.name for c in s), 0)) for s in sets]

    base = fake_trial((), 1, broken=2)
    best, tried = search(base, lambda t: offers[tuple(c.name for c in t.candidates)], evaluate)
    assert [c.name for c in best.candidates] == ["url", "debug"]
    assert calls == [[["url"], ["pin"], ["package"]], [["url", "debug"]]]
    assert len(tried) == 4


def test_search_returns_the_article_as_written_when_no_candidate_improves_it():
    base = fake_trial((), 3)
    best, tried = search(
        base,
        lambda t: [cand("worse", 3)] if not t.candidates else [],
        lambda s: [fake_trial(x, 2) for x in s],
    )
    assert best is base and len(tried) == 1


def test_a_trial_that_cannot_be_followed_scores_below_any_other():
    assert Trial((), error="uv failed").score < fake_trial((), 0, broken=19).score


# -- the repaired article's rule and diff -----------------------------------------------------


def test_the_repaired_article_verifies_only_when_every_claim_holds():
    assert not judge_repaired_article({"a": HOLDS, "b": HOLDS}).failed
    failed = judge_repaired_article({"a": HOLDS, "b": DRIFTED, "c": NOT_CHECKED})
    assert failed.failed and "2 claim(s) do not hold: b: drifted; c: not checked" in failed.message
    assert judge_repaired_article({}, error="no stack").failed


def test_the_repair_column_and_the_repaired_article_never_change_the_main_jobs_exit_code():
    def column(verdict: str) -> str:
        return judge_repair_column(ClaimFinding("c [with the repair]", verdict, "", "")).status

    assert [column(v) for v in (HOLDS, DRIFTED, BROKEN, NOT_CHECKED)] == [PASS, PASS, XFAIL, SKIP]
    assert judge_repaired_article({"a": BROKEN}, blocking=False).status == XFAIL


def test_the_diff_names_both_versions():
    diff = unified_diff("a\nb\n", "a\nc\n", "article.txt")
    assert "--- article.txt (as written)" in diff and "+c" in diff and "-b" in diff


# -- the recorded repair ------------------------------------------------------------------------

RECORD = Path(__file__).resolve().parent.parent / "claims" / "repair.yaml"
URL_LINE = next(n for n, ln in enumerate(ARTICLE.text.splitlines(), 1) if ln.startswith("DATABASE_URL="))
INIT_LINE = next(n for n, ln in enumerate(ARTICLE.text.splitlines(), 1) if ln.endswith("flask db init"))


def some_edits() -> list[Candidate]:
    (driver,) = [
        c
        for c in candidates_for(ARTICLE, verdicts(install_line=BROKEN), [TRACEBACK], VERSIONS)
        if "DATABASE_URL" in c.name
    ]
    (setting,) = candidates_for(ARTICLE, verdicts(flask_env=DRIFTED), [], VERSIONS)
    line = ARTICLE.text.splitlines(keepends=True)[INIT_LINE - 1]
    printed = Candidate("print a line", "", (Edit(INIT_LINE, line, line + "  a line it prints\n"),))
    return [driver, setting, printed]


def test_a_splice_holds_only_what_changes_and_makes_the_same_text_again():
    text = ARTICLE.text
    for candidate in some_edits():
        for edit in candidate.edits:
            splice = splice_of(text, edit)
            assert apply_edits(text, [edit_of(text, splice)]) == apply_edits(text, [edit])
    (url,) = some_edits()[0].edits
    assert splice_of(text, url) == Splice(URL_LINE, len("DATABASE_URL=postgresql"), 0, "+psycopg2")


def test_the_record_reads_back_as_the_same_repair_and_holds_none_of_the_articles_prose():
    driver, setting, printed = some_edits()
    data = to_data(ARTICLE.text, "a.txt", [driver, setting], [printed], {"x": {"holds": 1}}, "+3 -2 lines")
    dumped = store.dump(data)
    prose = [ln for ln in ARTICLE.text.splitlines() if len(ln) > 30]
    assert prose and not [ln for ln in prose if ln in dumped]
    assert applies_to(data, ARTICLE.text) and not applies_to(data, ARTICLE.text + "\n")
    back = from_data(yaml.safe_load(dumped), ARTICLE.text)
    assert [c.name for c in back.repair] == [driver.name, setting.name]
    both = [e for c in back.repair + back.rewrite for e in c.edits]
    original = [e for c in (driver, setting, printed) for e in c.edits]
    assert apply_edits(ARTICLE.text, both) == apply_edits(ARTICLE.text, original)
    with pytest.raises(RecordError, match="needs repair, rewrite and earned"):
        from_data({"repair": []}, ARTICLE.text)
    with pytest.raises(RecordError, match="the text has"):
        edit_of("one line\n", Splice(9, 0, 0, "x"))


def test_texts_differing_only_in_what_a_reader_reads_share_one_run():
    driver, setting, printed = some_edits()

    def text(*cands: Candidate) -> Any:
        return parse_article(apply_edits(ARTICLE.text, [e for c in cands for e in c.edits]), ARTICLE.path)

    assert run_inputs(text(driver, setting)) == run_inputs(text(driver, setting, printed))
    assert run_inputs(text(driver)) != run_inputs(text(driver, setting))


def test_a_repair_holds_only_with_nothing_broken_or_unchecked_and_the_repaired_text_all_holds():
    assert holds_everywhere(fake_trial((), 3), fake_trial((), 4))
    drifted = Trial((), verdicts(a=HOLDS, b=DRIFTED))
    assert holds_everywhere(drifted, fake_trial((), 2))
    assert not holds_everywhere(drifted, drifted)
    assert not holds_everywhere(fake_trial((), 3, broken=1), fake_trial((), 4))
    assert not holds_everywhere(Trial((), verdicts(a=NOT_CHECKED)), fake_trial((), 4))
    assert not holds_everywhere(fake_trial((), 3), Trial((), error="uv failed"))


def test_the_record_is_compared_like_a_snapshot_only_when_it_is_for_this_text(tmp_path):
    path = tmp_path / "repair.yaml"
    none = judge_repair_record(store.Comparison(path, exists=False, diff=""), applies=False)
    assert none.status == SKIP and "there is none" in none.message
    other = judge_repair_record(store.Comparison(path, exists=True, diff="-a\n+b\n"), applies=False)
    assert other.status == SKIP and "another text" in other.message
    changed = judge_repair_record(store.Comparison(path, exists=True, diff="-a\n+b\n"), applies=True)
    assert changed.status == FAIL and "+b" in changed.message and "--snapshot-update" in changed.message
    assert judge_repair_record(store.Comparison(path, exists=True, diff=""), applies=True).status == PASS


# -- output the article does not account for ------------------------------------------------

PLEASE_EDIT = "Please edit configuration/connection/logging settings in <tmp>/project/migrations/alembic.ini"


def init_observations(stdout: str) -> Observations:
    result = CommandResult(("flask", "db", "init"), 0, stdout, "", 0.1)
    obs = Observations("s", {}, "3.11", "15", ())
    obs.transcript.append(Ran(("flask", "db", "init"), "project", result, step="init"))
    obs.replacements = {"/tmp/x1": "<tmp>"}
    return obs


def test_a_line_the_article_prints_is_shown_its_volatile_parts_standing_for_anything():
    text = ARTICLE.text.replace(
        "pipenv run flask db init\n", "pipenv run flask db init\n  Done in .../app.\n"
    )
    article = parse_article(text, ARTICLE.path)
    assert quoted_by(article, "Done in   <tmp>/app.") and quoted_by(article, "Done in <cwd>/app.")
    assert not quoted_by(article, "Done in <tmp>/elsewhere.") and not quoted_by(ARTICLE, "Done in <tmp>/app.")
    assert reader_view("in <tmp>/project/migrations", "project") == "in <cwd>/migrations"


def test_the_repaired_article_prints_the_unaccounted_line_under_its_command_and_then_accounts_for_it():
    from harness.claims.rewrite import _output_lines

    obs = init_observations(f"  Creating directory /tmp/x1/project/migrations ...  done\n{PLEASE_EDIT}\n")
    before = [ln for ln in reader_lines(obs, ARTICLE, ("init",)) if ln.kind == UNACCOUNTED]
    assert [ln.text for ln in before] == [PLEASE_EDIT]
    trial = Trial((), {"no_warnings": Verdict(DRIFTED, "1 line(s) ...", "")}, obs, ARTICLE)
    made = _output_lines(ARTICLE, obs, trial)
    assert made is not None
    (edit,) = made.edits
    assert edit.line == INIT_LINE and edit.describe() == f"after line {INIT_LINE}: add 1 line(s)"
    repaired = parse_article(apply_edits(ARTICLE.text, made.edits), ARTICLE.path)
    assert "settings in .../migrations/alembic.ini" in repaired.text  # the reader's own folder: ...
    assert [ln.kind for ln in reader_lines(obs, repaired, ("init",))] == ["shown", "shown"]
    assert _output_lines(repaired, obs, trial) is None  # nothing left to print


def test_the_normalised_sequence_line_is_alembics_routine_log():
    from harness.claims.output import ROUTINE

    line = (
        "INFO  [alembic.ddl.postgresql] Detected sequence named '<sequence>' as owned by integer "
        "column '<table>(<column>)', assuming SERIAL and omitting"
    )
    assert any(p.match(line) for p in ROUTINE)
    assert any(
        p.match(line.replace("<sequence>", "pets_id_seq").replace("<table>(<column>)", "pets(id)"))
        for p in ROUTINE
    )


# -- on the real thing -------------------------------------------------------------------------


@pytest.mark.needs_server
def test_the_recorded_repair_verifies_on_todays_releases_and_a_search_finds_it_again(
    tmp_path, harness_server
):
    """Re-prove the recorded repair as the main job does (one run of the edited text), then search
    afresh and rewrite: every claim must hold on the repaired text, and the search must find what
    is recorded. Fails the day a release moves past the repair."""
    from helpers import session_for

    from harness.claims.catalogue import load_catalogue
    from harness.claims.repair import Prover, find_repair, line_stack, propose
    from harness.claims.rewrite import rewrite, write_repaired

    catalogue = load_catalogue(RECORD.parent / "catalogue.yaml")
    recorded = from_data(store.read(RECORD), ARTICLE.text)
    with session_for(harness_server, "fork", claims_runner="fork") as session:
        prover = Prover(session, ARTICLE, catalogue)
        column, repaired = prover.trial(recorded.repair), prover.trial(recorded.repair + recorded.rewrite)
        assert len(prover.runs) == 1  # the rewrite changes nothing the probe runs
        outcome = judge_repaired_article(repaired.verdict_names, repaired.error)
        assert not outcome.failed, outcome.message
        assert holds_everywhere(column, repaired)
        base = prover.trial(())
        assert line_stack(session, ARTICLE.install_packages) == "article"
        best, _ = find_repair(prover, base)
        changes = rewrite(best)
        verified = prover.trial(best.candidates + tuple(changes.candidates))
    assert [c.name for c in best.candidates] == [c.name for c in recorded.repair]
    assert [c.name for c in changes.candidates] == [
        c.name for c in recorded.rewrite
    ] and not changes.left_as_is
    assert apply_edits(ARTICLE.text, verified.edits) == apply_edits(ARTICLE.text, repaired.edits)
    assert propose(verified) == []  # nothing left to repair
    written = write_repaired(
        tmp_path, ARTICLE.path.name, ARTICLE.text, apply_edits(ARTICLE.text, verified.edits)
    )
    assert 0 < written.added < 40 and 0 < written.removed < 40


@pytest.mark.needs_server
def test_the_main_job_fails_on_a_record_that_no_longer_matches_and_update_records_it(
    tmp_path, harness_server
):
    """The main job in a folder of its own, its record's verdict counts tampered with: it re-proves
    the recorded edits (no search), says so, and fails on the record; --snapshot-update rewrites it."""
    import os
    import subprocess
    import sys

    from helpers import STACK_CACHE

    (tmp_path / "claims").mkdir()
    shutil.copy(RECORD.parent / "catalogue.yaml", tmp_path / "claims" / "catalogue.yaml")
    record = RECORD.read_text(encoding="utf-8")
    assert "  repaired article:\n    holds: 19\n" in record  # what the tampering below changes
    tampered = tmp_path / "claims" / "repair.yaml"
    tampered.write_text(
        record.replace("  repaired article:\n    holds: 19\n", "  repaired article:\n    holds: 18\n")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["MIGRATE_HARNESS_CACHE"] = STACK_CACHE
    env["MIGRATE_HARNESS_ARTICLE"] = str(ARTICLE.path)
    argv = [sys.executable, "-m", "pytest", "claims", "-p", "no:cacheprovider", "--claims-stack", "article"]
    argv += ["--claims-gate", "--claims-repair", "--claims-runner", "fork", "-rA"]
    argv += ["--pg-url", harness_server.url.render_as_string(hide_password=False)]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert "How: re-proven from repair.yaml." in out, out
    assert "FAILED claims/catalogue.yaml::recorded_repair" in out, out
    assert "-    holds: 18\n+    holds: 19" in out, out
    assert "PASSED claims/catalogue.yaml::repaired_article" in out, out
    done = subprocess.run(
        [*argv, "--snapshot-update"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert tampered.read_text(encoding="utf-8") == record, done.stdout


def test_the_report_states_the_repair_as_edits_of_the_text():
    from harness.claims.report import repair_markdown, repair_terminal

    summary = {
        "repair": [
            {"change": "name the driver", "because": "No module named 'psycopg'", "edits": ["line 35: a → b"]}
        ],
        "repair_size": 9,
        "tried": [{"changes": [], "counts": {"broken": 2}, "error": None}],
        "rewrite": [],
        "left_as_is": ["init_tree"],
        "repaired_counts": {"holds": 18, "drifted": 1},
        "verifies": False,
        "text_path": "reports/a.repaired.txt",
        "diff_path": "reports/a.repaired.diff",
        "added": 2,
        "removed": 2,
        "diff": "-a\n+b\n",
    }
    text = repair_terminal(summary)
    assert "The repair (9 characters changed)" in text and "    line 35: a → b" in text
    assert "the article as written: 2 broken" in text and "left as written (no rewriter): init_tree" in text
    assert "It DOES NOT verify on today's releases: 1 drifted, 18 holds." in text
    markdown = repair_markdown(summary)
    assert "  - line 35: a → b" in markdown and "```diff\n-a\n+b\n```" in markdown
