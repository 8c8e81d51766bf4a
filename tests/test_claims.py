"""The claim checks: each verdict kind comes out of an observation made to yield it.

The observations are built by hand (no database needed); the article is the real one, so the
expected values the checks compare against come from its text.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.claims.article import load_article
from harness.claims.catalogue import load_catalogue
from harness.claims.checks import BROKEN, DRIFTED, HOLDS, NOT_CHECKED, run_check
from harness.claims.output import ROUTINE_LINE, SHOWN, UNACCOUNTED, classify
from harness.claims.probe import Observations, Ran, transcript_data
from harness.claims.report import ClaimResult, markdown, terminal_table
from harness.judge import FAIL, PASS, ClaimFinding, judge_claim_record
from harness.observe.migration import Revision
from harness.runners.base import CommandResult

ARTICLE = load_article()
ROOT = Path(__file__).resolve().parent.parent


def ok(stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(("x",), 0, stdout, stderr, 0.1)


def failed(stderr: str, code: int = 1) -> CommandResult:
    return CommandResult(("x",), code, "", stderr, 0.1)


HELP_TEMPLATE = (
    "Usage: flask db [OPTIONS] COMMAND [ARGS]...\n\n"
    "Options:\n  --help  Show this message and exit.\n\nCommands:\n"
)


def db_help(commands: dict[str, str]) -> str:
    return HELP_TEMPLATE + "".join(f"  {name:<10} {text}\n" for name, text in commands.items())


REV1, REV2 = "1a2b3c4d5e6f", "6f5e4d3c2b1a"
TMP = "/tmp/migrate-harness-claims-t-x1y2"
INFO = "INFO  [alembic.runtime.migration] "
ROUTINE_START = f"{INFO}Context impl PostgresqlImpl.\n{INFO}Will assume transactional DDL.\n"


def reader_transcript(**extra_stderr: str) -> list[Ran]:
    """What the article's commands print on a stack where everything is as the article says;
    `extra_stderr` appends lines to a step's stderr."""
    migrations = f"{TMP}/project/migrations"
    init = (
        f"  Creating directory {migrations} ...  done\n"
        f"  Creating directory {migrations}/versions ...  done\n"
        + "".join(
            f"  Generating {migrations}/{name} ...  done\n" for name in ARTICLE.init_tree if "/" not in name
        )
    )
    steps = {
        "init": (("flask", "db", "init"), init, ""),
        "migrate": (
            ("flask", "db", "migrate", "-m", "create owners table"),
            f"  Generating {migrations}/versions/{REV1}_create_owners_table.py ...  done\n",
            ROUTINE_START + "INFO  [alembic.autogenerate.compare] Detected added table 'owners'\n",
        ),
        "upgrade": (
            ("flask", "db", "upgrade"),
            "",
            ROUTINE_START + f"{INFO}Running upgrade  -> {REV1}, create owners table\n",
        ),
        "pending_upgrade": (
            ("flask", "db", "upgrade"),
            "",
            ROUTINE_START
            + f"{INFO}Running upgrade  -> {REV1}, create owners table\n"
            + f"{INFO}Running upgrade {REV1} -> {REV2}, create pets table\n",
        ),
    }
    return [
        Ran(argv, "project", ok(out, err + extra_stderr.get(step, "")), step=step)
        for step, (argv, out, err) in steps.items()
    ]


def article_revision(upgrade: str | None = None) -> Revision:
    from harness.observe.migration import parse_ops

    up = upgrade or ARTICLE.upgrade_body
    return Revision(
        REV1,
        None,
        "create owners table",
        up,
        ARTICLE.downgrade_body,
        parse_ops(up),
        parse_ops(ARTICLE.downgrade_body),
    )


def observations(**changes: object) -> Observations:
    """An article run in which every step worked as the article says."""
    base = Observations(
        stack="t",
        versions={"flask": "3.1.3"},
        python="3.11",
        server="15",
        requirements=tuple(ARTICLE.install_packages),
        flask_help=ok("Commands:\n  db      Perform database migrations.\n"),
        db_help=ok(db_help(ARTICLE.help_commands)),
        init=ok(),
        init_tree=["README", "alembic.ini", "env.py", "script.py.mako", "versions/"],
        schema_after_init={"tables": {}, "enums": [], "sequences": [], "alembic_version": None},
        migrate=ok(),
        migrate_revisions=[article_revision()],
        upgrade=ok(),
        recipe_revisions=[dataclasses.replace(article_revision(), revision=REV2)],
        transcript=reader_transcript(),
        replacements={TMP: "<tmp>"},
    )
    return dataclasses.replace(base, **changes)


def verdict(name: str, obs: Observations) -> str:
    return run_check(name, obs, ARTICLE).verdict


def test_the_article_text_gives_the_expected_values():
    assert ARTICLE.install_packages == (
        "psycopg2-binary",
        "Flask-SQLAlchemy",
        "alembic",
        "Flask-Migrate",
        "Flask",
        "python-dotenv",
    )
    assert ARTICLE.init_tree == ("README", "alembic.ini", "env.py", "script.py.mako", "versions/")
    assert len(ARTICLE.help_commands) == 13 and "merge" in ARTICLE.help_commands
    assert ARTICLE.migrate_message == "create owners table"
    assert ARTICLE.upgrade_body.startswith("# ### commands auto generated by Alembic")
    assert ARTICLE.owner_columns["email"] == {
        "type": "String",
        "length": 255,
        "nullable": False,
        "primary_key": False,
    }


def test_every_catalogue_claim_has_a_check():
    claims = load_catalogue(ROOT / "claims" / "catalogue.yaml")
    assert len(claims) >= 15
    assert len({c.id for c in claims}) == len(claims)


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (["README", "alembic.ini", "env.py", "script.py.mako", "versions/"], HOLDS),
        (["README", "alembic.ini", "env.py", "script.py.mako", "versions/", "extra.txt"], DRIFTED),
        (["README", "alembic.ini", "script.py.mako", "versions/"], BROKEN),
    ],
)
def test_init_tree(tree, expected):
    assert verdict("init_tree", observations(init_tree=tree)) == expected


def test_init_tree_is_broken_when_init_fails():
    assert verdict("init_tree", observations(init=failed("Error: boom"), init_tree=None)) == BROKEN


def test_db_help_listing_kinds():
    assert verdict("db_help_listing", observations()) == HOLDS
    extra = {**ARTICLE.help_commands, "check": "Check if there are any new operations to migrate"}
    result = run_check("db_help_listing", observations(db_help=ok(db_help(extra))), ARTICLE)
    assert result.verdict == DRIFTED and "added: check" in result.observed
    fewer = {k: v for k, v in ARTICLE.help_commands.items() if k != "merge"}
    assert verdict("db_help_listing", observations(db_help=ok(db_help(fewer)))) == BROKEN


def test_migrate_listing_kinds():
    assert verdict("migrate_listing", observations()) == HOLDS
    batch_rendering = ARTICLE.upgrade_body.replace(
        "# ### end Alembic commands ###", "\n# ### end Alembic commands ###"
    )
    assert (
        verdict("migrate_listing", observations(migrate_revisions=[article_revision(batch_rendering)]))
        == DRIFTED
    )
    other = ARTICLE.upgrade_body.replace("sa.Column('email', sa.String(length=255), nullable=False),\n", "")
    assert verdict("migrate_listing", observations(migrate_revisions=[article_revision(other)])) == BROKEN
    assert (
        verdict("migrate_listing", observations(migrate=failed("Error"), migrate_revisions=None))
        == NOT_CHECKED
    )


def test_install_line_kinds():
    assert verdict("install_line", observations()) == HOLDS
    pinned = observations(requirements=(*ARTICLE.install_packages, "SQLAlchemy<2.1"))
    result = run_check("install_line", pinned, ARTICLE)
    assert result.verdict == DRIFTED and "SQLAlchemy<2.1" in result.observed
    no_app = observations(
        flask_help=failed(
            "Error: While importing 'flask_migrate_test', an ImportError was "
            "raised:\nModuleNotFoundError: No module named 'psycopg'\n"
        )
    )
    result = run_check("install_line", no_app, ARTICLE)
    assert result.verdict == BROKEN and "No module named 'psycopg'" in result.observed
    # and the claims that need the app are not checked, with the reason
    dependent = run_check("init_tree", no_app, ARTICLE)
    assert dependent.verdict == NOT_CHECKED and "does not load" in dependent.reason


def test_psycopg2_connects():
    assert verdict("psycopg2_connects", observations(versions={"psycopg2-binary": "2.9.13"})) == HOLDS
    no_driver = observations(
        flask_help=failed("Error: While importing 'x'\nModuleNotFoundError: No module named 'psycopg'")
    )
    assert verdict("psycopg2_connects", no_driver) == BROKEN
    both = observations(versions={"psycopg2-binary": "2.9.13", "psycopg": "3.3"})
    assert verdict("psycopg2_connects", both) == NOT_CHECKED


def test_init_not_database_and_migrate_one_file():
    assert verdict("init_not_database", observations()) == HOLDS
    version_table = {"tables": {}, "enums": [], "sequences": [], "alembic_version": []}
    assert verdict("init_not_database", observations(schema_after_init=version_table)) == BROKEN
    assert verdict("migrate_one_file", observations()) == HOLDS
    assert verdict("migrate_one_file", observations(migrate_revisions=[])) == BROKEN
    two = [article_revision(), article_revision()]
    assert verdict("migrate_one_file", observations(migrate_revisions=two)) == DRIFTED
    # the file is written, but the output no longer says which: "it created a file" is not shown
    silent = [r if r.step != "migrate" else dataclasses.replace(r, result=ok()) for r in reader_transcript()]
    result = run_check("migrate_one_file", observations(transcript=silent), ARTICLE)
    assert result.verdict == DRIFTED and result.details == {"files": ["<rev1>"], "announced": []}


def test_flask_env_development():
    assert verdict("flask_env_development", observations(shell=ok("app.debug = True\n"))) == HOLDS
    assert verdict("flask_env_development", observations(shell=ok("app.debug = False\n"))) == DRIFTED
    assert verdict("flask_env_development", observations(shell=failed("Error"))) == NOT_CHECKED


def test_all_alembic_commands():
    alembic = ok("usage: alembic [-h] {branches,check,current,merge} ...\n")
    flask = ok(db_help({"branches": "x", "check": "x", "current": "x", "merge": "x"}))
    assert verdict("all_alembic_commands", observations(alembic_help=alembic, db_help=flask)) == HOLDS
    more = ok("usage: alembic [-h] {branches,check,current,ensure_version,merge} ...\n")
    result = run_check("all_alembic_commands", observations(alembic_help=more, db_help=flask), ARTICLE)
    assert result.verdict == DRIFTED and "ensure_version" in result.observed


def test_no_warnings_accounts_for_every_line():
    result = run_check("no_warnings", observations(), ARTICLE)
    assert result.verdict == HOLDS, result.observed
    assert result.details["lines"] == {"shown": 10, "routine": 7, "unaccounted": 0}


@pytest.mark.parametrize(
    "line",
    [
        "FSADeprecationWarning: SQLALCHEMY_TRACK_MODIFICATIONS adds significant overhead",
        "hello from a line nobody expected",  # any wording: no keyword decides
        "INFO  [alembic.runtime.migration] Running stamp_revision  -> 1a2b3c4d5e6f",
        "INFO  [alembic.autogenerate.compare] Detected removed index 'ix_owners_email' on 'owners'",
    ],
)
def test_one_extra_line_anywhere_is_drift_with_the_line_quoted(line):
    obs = observations(transcript=reader_transcript(upgrade=line + "\n"))
    result = run_check("no_warnings", obs, ARTICLE)
    expected = obs.normalise(f"`flask db upgrade` stderr: {line}")
    assert result.verdict == DRIFTED and result.details["unaccounted"] == [expected]
    assert expected in result.observed


def test_one_extra_line_fails_the_recorded_claim_with_the_line_in_the_message(tmp_path):
    from harness import store

    path = tmp_path / "verdicts" / "t.yaml"

    def finding(obs: Observations) -> ClaimFinding:
        v = run_check("no_warnings", obs, ARTICLE)
        return ClaimFinding("no_warnings [t]", v.verdict, v.observed, v.article, v.reason, v.details)

    clean = finding(observations())
    store.write_record(clean.record, path, "no_warnings")
    assert (
        judge_claim_record(clean, store.compare_record(clean.record, path, "no_warnings"), "x").status == PASS
    )
    noisy = finding(observations(transcript=reader_transcript(migrate="a brand-new notice\n")))
    outcome = judge_claim_record(
        noisy, store.compare_record(noisy.record, path, "no_warnings"), "no_warnings"
    )
    assert (
        outcome.status == FAIL and outcome.headline == "verdict changed: recorded 'holds', observed 'drifted'"
    )
    assert "`flask db migrate -m 'create owners table'` stderr: a brand-new notice" in outcome.message
    # the same verdict with other evidence fails too, with the diff
    store.write_record(noisy.record, path, "no_warnings")
    other = finding(observations(transcript=reader_transcript(migrate="another notice\n")))
    outcome = judge_claim_record(
        other, store.compare_record(other.record, path, "no_warnings"), "no_warnings"
    )
    assert outcome.status == FAIL and outcome.headline.startswith("evidence changed under the same verdict")
    assert "+    - '`flask db migrate -m ''create owners table''` stderr: another notice'" in outcome.message


def test_lines_are_classified_by_explicit_rules():
    migrations = f"{TMP}/project/migrations"
    init = Ran(
        ("flask", "db", "init"),
        "project",
        ok(
            f"  Generating {migrations}/env.py ...  done\n"
            f"  Generating {migrations}/extra.cfg ...  done\n"
            "  Please edit configuration/connection/logging settings in "
            f"'{migrations}/alembic.ini' before proceeding.\n"
        ),
        step="init",
    )
    kinds = [
        (line.kind, line.text.split("/")[-1]) for line in classify(init, ARTICLE, observations().normalise)
    ]
    assert kinds == [
        (SHOWN, "env.py ...  done"),
        (UNACCOUNTED, "extra.cfg ...  done"),  # not in the article's tree
        (UNACCOUNTED, "alembic.ini' before proceeding."),
    ]
    # the same "Running upgrade" line is shown for an upgrade, but the article shows no downgrade
    line = f"{INFO}Running upgrade  -> <rev1>, create owners table"
    for step, kind in (("upgrade", SHOWN), ("downgrade_base", UNACCOUNTED)):
        assert classify(Ran(("flask",), "project", ok("", line), step=step), ARTICLE)[0].kind == kind
    plugin = "INFO  [alembic.runtime.plugins] setting up autogenerate plugin alembic.autogenerate.tables"
    assert classify(Ran(("flask",), "p", ok("", plugin), step="migrate"), ARTICLE)[0].kind == ROUTINE_LINE


def test_alembic_serial_sequence_line_is_routine_before_and_after_normalising():
    """The normaliser takes the names out of Alembic's 'Detected sequence' lines (they come in set
    order); the line is routine INFO log either way, never a line the article fails to account for."""
    stderr = (
        f"{INFO}Context impl PostgresqlImpl.\n"
        "INFO  [alembic.ddl.postgresql] Detected sequence named 'owners_id_seq' as owned by integer "
        "column 'owners(id)', assuming SERIAL and omitting\n"
    )
    ran = Ran(("flask",), "project", ok("", stderr), step="recipe_migrate")
    raw, normalised = classify(ran, ARTICLE), classify(ran, ARTICLE, observations().normalise)
    assert "owners_id_seq" in raw[1].text and "<sequence>" in normalised[1].text
    for line in raw + normalised:
        assert line.kind == ROUTINE_LINE, line.text


def test_upgrade_all_pending_needs_the_output_to_show_each_revision():
    applied = {
        "pending_upgrade": ok(),
        "pending_before_upgrade": [REV1, REV2],
        "heads": [REV2],
        "pending_after": {"alembic_version": [REV2], "tables": {"owners": {}, "pets": {}}},
        "recipe_revisions": [dataclasses.replace(article_revision(), revision=REV2)],
    }
    result = run_check("upgrade_all_pending", observations(**applied), ARTICLE)
    assert result.verdict == HOLDS, result.observed
    assert result.details == {
        "pending": ["<rev1>", "<rev2>"],
        "shown": ["base -> <rev1>", "<rev1> -> <rev2>"],
    }
    quiet = [r for r in reader_transcript() if r.step != "pending_upgrade"]
    assert verdict("upgrade_all_pending", observations(transcript=quiet, **applied)) == DRIFTED


def test_the_transcript_is_normalised_and_keeps_the_streams_apart():
    obs = observations(
        transcript=[
            *reader_transcript(),
            Ran(
                ("flask", "shell"),
                "project",
                ok(">>> x\n", "Python 3.11.7 (main, Dec  8 2023, 14:22:46) [GCC 12.2.0] on linux\n"),
                stdin="print(1)\n",
                step="shell",
            ),
        ]
    )
    data = transcript_data(obs)
    assert data[1] == {
        "command": "flask db migrate -m 'create owners table'",
        "in": "project",
        "exit": 0,
        "stdout": "  Generating <tmp>/project/migrations/versions/<rev1>_create_owners_table.py ...  done\n",
        "stderr": ROUTINE_START + "INFO  [alembic.autogenerate.compare] Detected added table 'owners'\n",
    }
    assert data[-1]["stdin"] == "print(1)\n" and data[-1]["stderr"] == "Python <python> on linux\n"


def test_owners_table():
    columns = [
        {"name": "id", "type": "INTEGER", "nullable": False},
        {"name": "first_name", "type": "VARCHAR(50)", "nullable": False},
        {"name": "last_name", "type": "VARCHAR(50)", "nullable": False},
        {"name": "email", "type": "VARCHAR(255)", "nullable": False},
    ]
    schema = {"tables": {"owners": {"columns": columns, "primary_key": {"columns": ["id"]}}}}
    assert verdict("owners_table", observations(schema_after_upgrade=schema)) == HOLDS
    columns[3] = {"name": "email", "type": "VARCHAR(120)", "nullable": True}
    assert verdict("owners_table", observations(schema_after_upgrade=schema)) == BROKEN


def test_a_crashing_check_is_not_checked_not_a_crash():
    result = run_check(
        "upgrade_all_pending",
        observations(pending_upgrade=ok(), pending_before_upgrade=["a", "b"], pending_after={}),
        ARTICLE,
    )
    assert result.verdict == NOT_CHECKED and "KeyError" in result.observed


def results() -> list[ClaimResult]:
    env = '{"versions": {"flask": "3.1.3"}, "python": "3.11.7", "server": "15.18"}'
    return [
        ClaimResult(
            "init_tree", "Managing", "init makes the tree", stack, verdict, "observed | text", "said", "", env
        )
        for stack, verdict in (("article", "broken"), ("current", "holds"))
    ]


def test_reports_are_deterministic_and_carry_evidence():
    text = markdown(results(), "flask-migrate-autogenerate.txt")
    assert text == markdown(results(), "flask-migrate-autogenerate.txt")
    assert (
        "| `init_tree`: init makes the tree | Managing | [broken](#init_tree-article) "
        "| [holds](#init_tree-current) |" in text
    )
    assert "- **article**: Python 3.11.7, PostgreSQL 15.18; flask 3.1.3" in text
    assert "### init_tree on article: broken" in text
    table = terminal_table(results())
    assert "init_tree" in table and "broken" in table and "holds" in table


def test_claim_results_survive_the_trip_through_user_properties():
    result = results()[0]
    assert ClaimResult.from_properties(result.as_properties() + [("other", 1)]) == result


@pytest.mark.needs_server
def test_a_real_command_that_prints_one_extra_line_fails_the_claims_run_with_that_line(
    harness_server, tmp_path
):
    """The article's project, with one line printed to stderr whenever the app is imported: the
    real probe on the current stack, judged against the committed transcript and records."""
    import shutil

    from helpers import session_for

    from harness import store
    from harness.claims.probe import probe
    from harness.judge import judge_transcript
    from harness.project import FIXTURE

    line = "a line the article never shows"
    fixture = tmp_path / "project"
    shutil.copytree(FIXTURE, fixture)
    init = fixture / "app" / "__init__.py"
    init.write_text(f"import sys\nprint({line!r}, file=sys.stderr)\n" + init.read_text())
    with session_for(harness_server, "fork", fixture=fixture, claims_runner="fork") as session:
        obs = probe(session, "current", ARTICLE)
    catalogue = ROOT / "claims" / "catalogue.yaml"
    transcript = judge_transcript(
        store.compare_file(transcript_data(obs), store.transcript_file(catalogue, "current")), "current"
    )
    assert transcript.status == FAIL and f"+    {line}" in transcript.message
    found = run_check("no_warnings", obs, ARTICLE)
    assert found.verdict == DRIFTED
    assert f"`flask db upgrade` stderr: {line}" in found.details["unaccounted"]
    finding = ClaimFinding(
        "no_warnings [current]", found.verdict, found.observed, found.article, found.reason, found.details
    )
    records = store.records_file(catalogue, "current")
    outcome = judge_claim_record(
        finding, store.compare_record(finding.record, records, "no_warnings"), "no_warnings"
    )
    assert outcome.status == FAIL and f"`flask db upgrade` stderr: {line}" in outcome.message
