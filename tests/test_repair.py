"""The repair: edits of the article's text, candidates read off failures, the smallest-set search,
the rewrite of drifted passages; and, on the real thing, the repaired article verifying.

The pure parts take the real article text (read where the project reads it, never copied) and
hand-made verdicts and outputs; the search is given a fake `evaluate`. The last test follows the
repaired article for real (uv stacks, a throwaway PostgreSQL, the `flask db` CLI) and fails when
it no longer verifies on today's releases.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.claims.article import install_line_numbers, load_article, parse_article
from harness.claims.checks import Verdict
from harness.claims.repair import (
    Candidate,
    Edit,
    RepairError,
    Trial,
    add_requirement,
    apply_edits,
    candidates_for,
    search,
)
from harness.claims.rewrite import unified_diff
from harness.judge import (
    BROKEN,
    DRIFTED,
    HOLDS,
    NOT_CHECKED,
    PASS,
    SKIP,
    XFAIL,
    ClaimFinding,
    judge_repair_column,
    judge_repaired_article,
)

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


# -- on the real thing -------------------------------------------------------------------------


@pytest.mark.needs_server
def test_the_repaired_article_verifies_on_todays_releases(tmp_path):
    """Search the repair and rewrite the drifted passages as the main job does, then follow the
    repaired text: every claim must hold. Fails the day a release moves past the repair."""
    from pathlib import Path

    from harness.claims.catalogue import load_catalogue
    from harness.claims.repair import Prover, find_repair, line_stack, propose
    from harness.claims.rewrite import rewrite, write_repaired
    from harness.session import Options, Session

    catalogue = load_catalogue(Path(__file__).resolve().parent.parent / "claims" / "catalogue.yaml")
    with Session(Options()) as session:
        prover = Prover(session, ARTICLE, catalogue)
        base = prover.trial(())
        assert line_stack(session, ARTICLE.install_packages) == "article"
        best, _ = find_repair(prover, base)
        assert best.candidates, f"no repair found; the article as written: {base.score}"
        changes = rewrite(best)
        verified = prover.trial(best.candidates + tuple(changes.candidates))
    outcome = judge_repaired_article({k: v.verdict for k, v in verified.verdicts.items()}, verified.error)
    assert not outcome.failed, outcome.message
    assert propose(verified) == []  # nothing left to repair
    written = write_repaired(
        tmp_path, ARTICLE.path.name, ARTICLE.text, apply_edits(ARTICLE.text, verified.edits)
    )
    assert 0 < written.added < 40 and 0 < written.removed < 40


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
