"""The plugin end to end, through pytester: a scenario file in, pytest's verdict and report out.

Inner runs use the fork runner (faithful: tests/test_fastrunner.py), and each run is there for a
verdict no other run gives: an inner session costs a server's worth of seconds.
"""

import pytest
from helpers import OWNERS, STACK_CACHE, one_table

from harness.server import Server

pytestmark = pytest.mark.needs_server

MODEL = OWNERS


@pytest.fixture
def project(pytester: pytest.Pytester, harness_server: Server, monkeypatch) -> pytest.Pytester:
    monkeypatch.setenv("MIGRATE_HARNESS_CACHE", STACK_CACHE)
    (pytester.path / "scenarios").mkdir()
    pytester.url = harness_server.url.render_as_string(hide_password=False)  # type: ignore[attr-defined]
    return pytester


def write(pytester: pytest.Pytester, models: str) -> None:
    (pytester.path / "scenarios" / "mini.yaml").write_text(one_table("mini", models))


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    url = pytester.url  # type: ignore[attr-defined]
    return pytester.runpytest_subprocess("--pg-url", url, "-p", "no:cacheprovider", "--runner", "fork", *args)


def test_missing_snapshot_then_update_then_pass_then_diff_on_change(project):
    write(project, MODEL)
    first = run(project)
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["*no snapshot scenarios/__snapshots__/mini.yaml*--snapshot-update*"])

    updated = run(project, "--snapshot-update")
    updated.assert_outcomes(passed=1)
    updated.stdout.fnmatch_lines(["*snapshots written*", "*scenarios/__snapshots__/mini.yaml"])
    text = (project.path / "scenarios" / "__snapshots__" / "mini.yaml").read_text()
    assert "op.create_table('owners'," in text and "<rev1>" in text

    run(project).assert_outcomes(passed=1)

    write(project, MODEL + "          email = db.Column(db.String(255))\n")
    changed = run(project)
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(
        [
            "*observations differ from scenarios/__snapshots__/mini.yaml (- expected, + observed):*",
            "+*sa.Column('email', sa.String(length=255), nullable=True),",
        ]
    )
    # (A second update and pass after the change would repeat the second and third runs.)


def test_broken_model_code_points_at_the_scenario_line(project):
    write(project, MODEL + "          email = db.Column(db.Strin(255))\n")
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            # flask must import the app before it knows `db`, so even `init` fails
            "*scenarios/mini.yaml:12: step 'owners', command `flask db init`: failed unexpectedly:*",
            '*File "scenarios/mini.yaml", line 10 (app/models.py line 11), in Owner*',
            "*AttributeError*Strin*",
        ]
    )


def test_a_malformed_scenario_is_a_collection_error_and_others_still_run(project):
    write(project, MODEL)
    (project.path / "scenarios" / "broken.yaml").write_text(
        "id: broken\ntitle: t\nsteps:\n  - name: s\n    comands: [init]\n"
    )
    result = run(project, "--snapshot-update")  # the good one passes (its snapshot is written)
    result.assert_outcomes(passed=1, errors=1)
    assert "scenarios/broken.yaml:5: steps[0]: unknown key 'comands'" in result.stdout.str()
