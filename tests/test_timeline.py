"""The truth timeline: the search on a fake resolver and a fake probe (pure, no network), the
record and the page from a small record, and one real date stack built (and, with a server, probed)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from harness.claims.checks import Verdict
from harness.timeline import datestacks, render, search
from harness.timeline.run import Prober, build_record, claim_result, normalise_evidence, run_timeline

DAY0 = date(2020, 1, 1)
END = date(2021, 12, 31)


def day(n: int) -> date:
    return DAY0 + timedelta(days=n)


# A fake index: each package's releases as (upload day, version).
RELEASES = {
    "flask": [(day(0), "1.0"), (day(130), "2.0"), (day(400), "3.0")],
    "werkzeug": [(day(0), "1.0"), (day(55), "1.1"), (day(250), "2.0")],
    "click": [(day(0), "7"), (day(17), "7.1"), (day(33), "7.2"), (day(250), "8")],  # 8 only with werkzeug 2
    "six": [(day(0), "1.0"), (day(90), "1.1"), (day(300), "1.2")],
}


class FakeWorld:
    """Resolves like --exclude-newer (the newest release uploaded by the day) and probes by rule."""

    def __init__(self, releases=RELEASES, unresolvable=()):
        self.releases, self.unresolvable = releases, set(unresolvable)
        self.resolved: list[date] = []
        self.evaluated: list[search.Pins | None] = []

    def resolve(self, d: date) -> search.Pins | None:
        self.resolved.append(d)
        if d in self.unresolvable:
            return None
        return tuple(
            sorted((name, [v for up, v in rel if up <= d][-1]) for name, rel in self.releases.items())
        )

    def probe(self, pins: search.Pins | None) -> dict[str, str]:
        self.evaluated.append(pins)
        if pins is None:
            return {c: "not installable" for c in ("a", "b", "c")}
        p = dict(pins)
        return {
            # a: breaks with flask 2.0 and stays broken
            "a": "holds" if p["flask"] == "1.0" else "broken",
            # b: drifts only when click 8 and werkzeug 2 are both there (uploaded the same day)
            "b": "drifted" if (p["click"] == "8" and p["werkzeug"] == "2.0") else "holds",
            # c: never changes
            "c": "holds",
        }


def cached(world: FakeWorld):
    cache: dict = {}

    def evaluate(pins):
        if pins not in cache:
            cache[pins] = world.probe(pins)
        return cache[pins]

    return evaluate


def test_bisection_pins_each_change_to_the_upload_day():
    world = FakeWorld()
    out = run_timeline(DAY0, END, 182, world.resolve, cached(world), ["a", "b", "c"])
    found = sorted((c.claim, c.day) for c in out.changes)
    assert found == [("a", day(130)), ("b", day(250))]
    for change in out.changes:
        assert change.day - change.before == timedelta(days=1)
    # every distinct resolution is probed once, and far fewer than one per day
    assert len(world.evaluated) == len(set(world.evaluated))
    assert len(world.evaluated) < 25


def test_culprit_alone_and_culprits_only_together():
    world = FakeWorld()
    out = run_timeline(DAY0, END, 182, world.resolve, cached(world), ["a", "b", "c"])
    a = out.culprits["a", day(130).isoformat()]
    assert [c.packages for c in a] == [("flask",)]
    assert dict(a[0].confirmed_by)["flask"] == "2.0" and dict(a[0].confirmed_by)["werkzeug"] == "1.1"
    b = out.culprits["b", day(250).isoformat()]
    assert [c.packages for c in b] == [("click", "werkzeug")]  # neither alone; the pair does
    assert ("click",) in b[0].tried and ("werkzeug",) in b[0].tried


def test_culprit_search_says_when_no_pair_reproduces():
    old = (("x", "1"), ("y", "1"), ("z", "1"))
    new = (("x", "2"), ("y", "2"), ("z", "2"))

    def evaluate(pins):  # changes only when all three move
        return {"k": "new" if all(v == "2" for _, v in pins) else "old"}

    [culprit] = search.find_culprits("k", old, new, "new", evaluate)
    assert culprit.packages == () and culprit.confirmed_by is None
    assert len(culprit.tried) == 3 + 3  # every single, then every pair


def test_swap_adds_and_removes_packages():
    old = (("flask", "1"), ("six", "1"))
    new = (("blinker", "1"), ("flask", "2"))
    assert search.swap(old, new, ("flask",)) == (("flask", "2"), ("six", "1"))
    assert search.swap(old, new, ("blinker", "six")) == (("blinker", "1"), ("flask", "1"))
    assert search.differing(old, new) == ["blinker", "flask", "six"]


def test_a_day_that_does_not_resolve_is_a_window_of_its_own():
    world = FakeWorld(unresolvable={day(182)})
    out = run_timeline(DAY0, day(364), 182, world.resolve, cached(world), ["a", "b", "c"])
    assert out.timeline.days[day(182)] is None
    claims_c = [c for c in out.changes if c.claim == "c"]
    assert [c.new for c in claims_c] == ["not installable", "holds"]


def test_incremental_run_with_no_new_release_probes_nothing():
    world = FakeWorld()
    evaluate = cached(world)
    first = run_timeline(DAY0, END, 182, world.resolve, evaluate, ["a", "b", "c"])
    world.resolved.clear()
    before = len(world.evaluated)
    later = END + timedelta(days=7)
    again = run_timeline(
        DAY0, later, 182, world.resolve, evaluate, ["a", "b", "c"], known=first.timeline.days
    )
    assert len(world.evaluated) == before  # no new resolution: no probe
    assert world.resolved == [later]  # only the new day is resolved
    assert [(c.claim, c.day) for c in again.changes] == [(c.claim, c.day) for c in first.changes]


def test_incremental_run_after_a_release_bisects_only_the_new_gap():
    world = FakeWorld()
    evaluate = cached(world)
    first = run_timeline(DAY0, day(380), 182, world.resolve, evaluate, ["a", "b", "c"])
    world.resolved.clear()
    again = run_timeline(
        DAY0, day(420), 182, world.resolve, evaluate, ["a", "b", "c"], known=first.timeline.days
    )
    assert all(d > day(380) for d in world.resolved)
    assert sorted(c.day for c in again.changes) == [day(130), day(250)]  # flask 3.0 changes no claim


def test_result_is_the_verdict_and_the_evidence_without_versions():
    observed = "installed alembic==1.3.2, flask==1.1.1; revision 3f2a9c1b7d0e applied; 13 commands"
    assert (
        normalise_evidence(observed)
        == "installed alembic==<v>, flask==<v>; revision <rev> applied; 13 commands"
    )
    assert (
        claim_result(Verdict("holds", "Flask 2.3.3: app.debug is True", ""))
        == "holds: Flask <v>: app.debug is True"
    )


class _FakeSession:
    pass


def small_record():
    world = FakeWorld()
    prober = Prober(_FakeSession(), None, [])  # type: ignore[arg-type]
    evaluate = cached(world)

    def through(pins):
        if pins is not None:
            key = datestacks.pins_key(pins)
            prober.pins[key], prober.results[key] = pins, evaluate(pins)
        return evaluate(pins)

    out = run_timeline(DAY0, END, 182, world.resolve, through, ["a", "b", "c"])
    article = type("A", (), {"install_packages": ("flask", "werkzeug")})()
    return build_record(
        out, prober, article, DAY0, END, 182, "fp", uploads=lambda name, version: "2020-05-10T00:00:00Z"
    )


def test_record_and_page_from_a_fake_timeline(tmp_path: Path):
    record = json.loads(json.dumps(small_record()))
    assert [(c["claim"], c["day"]) for c in record["changes"]] == [
        ("a", day(130).isoformat()),
        ("b", day(250).isoformat()),
    ]
    assert render.windows(record, "a") == [
        (DAY0.isoformat(), day(129).isoformat(), "holds"),
        (day(130).isoformat(), END.isoformat(), "broken"),
    ]
    page = render.render(record, chart=None)
    # every claim held until flask 2.0: the headline says for whom
    assert f"**Every claim held for readers who installed between {DAY0} and {day(129)}.**" in page
    assert "flask 1.0 → 2.0 (uploaded 2020-05-10)" in page
    assert "— only together" in page  # click + werkzeug
    assert "### culprit a " + day(130).isoformat() in page
    # rendering is deterministic
    assert render.render(record, chart=None) == page


def test_chart_is_drawn(tmp_path: Path):
    record = json.loads(json.dumps(small_record()))
    render.chart(record, tmp_path / "t.svg")
    first = (tmp_path / "t.svg").read_text()
    assert first.startswith("<?xml") and "flask 2.0" in first
    render.chart(record, tmp_path / "t.svg")
    assert (tmp_path / "t.svg").read_text() == first


ERA_DAY = date(2020, 7, 1)  # the article's era


def test_real_date_stack_of_the_article_era_resolves_and_installs():
    line = ("psycopg2-binary", "Flask-SQLAlchemy", "alembic", "Flask-Migrate", "Flask", "python-dotenv")
    found = datestacks.resolve(line, ERA_DAY)
    assert found.error is None, found.error
    pins = dict(found.pins)
    assert pins["flask"].startswith("1.1.") and pins["sqlalchemy"].startswith("1.3.")
    assert pins["psycopg2-binary"] == "2.9.5"  # the named exemption, nothing newer
    assert "setuptools" in pins  # the seed
    for name, version in pins.items():
        if name != "psycopg2-binary":
            assert datestacks.upload_time(name, version) < "2020-07-02", (name, version)
    env = datestacks.build_env("era-test", line, found.pins)
    assert env.versions == pins and env.stack.requirements == line
    import subprocess

    done = subprocess.run(
        [str(env.executable("python")), "-c", "import flask_migrate, psycopg2, pkg_resources; print('ok')"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.needs_server
def test_real_date_stack_probed(harness_server):
    from harness.claims.article import load_article
    from harness.claims.catalogue import load_catalogue
    from harness.session import Options, Session
    from harness.timeline.run import CATALOGUE, runner_kind

    article = load_article()
    found = datestacks.resolve(article.install_packages, ERA_DAY)
    url = harness_server.url.render_as_string(hide_password=False)
    claims = load_catalogue(CATALOGUE)
    with Session(Options(pg_url=url, claims_runner="fork")) as session:
        prober = Prober(session, article, claims)
        results = prober(found.pins)  # the search's runner
        assert session._runners == {}  # the date stack's fork server was stopped after its probe
        with runner_kind([session], "subprocess"):  # the reader's runner, as the evidence check does
            again = Prober(session, article, claims)(found.pins)
        assert session.options.claims_runner == "fork"
    assert prober.probes == 1
    assert results["db_command_added"].startswith("holds: ")
    assert results["install_line"].startswith("holds: init, migrate and upgrade ran; installed alembic==<v>")
    assert again == results


def test_a_spent_budget_leaves_gaps_unrefined_and_invents_no_change():
    world = FakeWorld()
    cache: dict = {}

    def evaluate(pins):
        if pins not in cache:
            if len(cache) >= 3:  # the budget: three probes
                raise search.Unavailable()
            cache[pins] = world.probe(pins)
        return cache[pins]

    out = run_timeline(DAY0, END, 182, world.resolve, evaluate, ["a", "b", "c"])
    assert out.timeline.unrefined  # some gap was left
    assert len(cache) == 3
    for change in out.changes:  # whatever it reports is a real change of the full run
        assert (change.claim, change.day) in {("a", day(130)), ("b", day(250))}


def test_days_are_evaluated_level_by_level_for_parallel_probes():
    world = FakeWorld()
    evaluate = cached(world)
    batches: list[int] = []

    def prefetch(many):
        batches.append(len(many))
        for pins in many:
            evaluate(pins)

    out = run_timeline(DAY0, END, 182, world.resolve, evaluate, ["a", "b", "c"], prefetch=prefetch)
    assert batches[0] == len(search.grid(DAY0, END, 182))  # the whole grid first, as one batch
    assert [(c.claim, c.day) for c in out.changes] == [("a", day(130)), ("b", day(250))]


def uploads_of(releases=RELEASES):
    return lambda name: sorted({up for up, _ in releases.get(name, [])})


def test_split_halves_the_upload_days_inside_a_gap():
    lo, hi = day(0), day(100)
    assert search.split(lo, hi, [day(10), day(20), day(30), day(200)]) == day(20)
    assert search.split(lo, hi, [day(10), day(20)]) == day(10)
    # one upload day left: the day before it (resolves like lo), then the day itself
    assert search.split(lo, hi, [day(40)]) == day(39)
    assert search.split(day(39), hi, [day(40)]) == day(40)
    # none inside (or only hi, a day after lo): the middle day
    assert search.split(lo, hi, []) == day(50)
    assert search.split(lo, hi, [day(0), day(150)]) == day(50)
    for cands in ([], [day(1)], [day(100)], [day(1), day(2)], [day(99), day(100)]):
        assert lo < search.split(lo, hi, cands) < hi


def test_bisection_guided_by_upload_days_finds_the_same_days_with_fewer_resolves():
    plain, guided = FakeWorld(), FakeWorld()
    a = run_timeline(DAY0, END, 365, plain.resolve, cached(plain), ["a", "b", "c"])
    b = run_timeline(DAY0, END, 365, guided.resolve, cached(guided), ["a", "b", "c"], uploads=uploads_of())
    assert [(c.claim, c.day) for c in b.changes] == [(c.claim, c.day) for c in a.changes]
    assert [(c.claim, c.day) for c in b.changes] == [("a", day(130)), ("b", day(250))]
    assert len(set(guided.resolved)) < len(set(plain.resolved))
    assert len(guided.evaluated) <= len(plain.evaluated)


def test_upload_days_missing_from_the_index_cost_probes_not_correctness():
    world = FakeWorld()
    partial = {"six": RELEASES["six"]}  # the index told us of six's uploads only
    out = run_timeline(
        DAY0, END, 365, world.resolve, cached(world), ["a", "b", "c"], uploads=uploads_of(partial)
    )
    assert [(c.claim, c.day) for c in out.changes] == [("a", day(130)), ("b", day(250))]


def test_evidence_keys_are_each_change_sides_and_culprit_runs_once():
    from harness.timeline.run import evidence_keys

    record = small_record()
    keys = evidence_keys(record)
    assert len(keys) == len(set(keys))
    for change in record["changes"]:
        assert change["old_resolution"] in keys and change["new_resolution"] in keys
        for culprit in change["culprits"]:
            assert culprit["confirmed_by"] in keys
    assert set(keys) <= set(record["resolutions"])


def test_headline_names_each_best_stretch_and_the_claims_that_failed_there():
    record = small_record()
    # make claim c fail while a holds (before flask 2.0), so no day has every claim holding
    first = min(record["days"])
    for d, key in record["days"].items():
        if d < day(130).isoformat():
            record["resolutions"][key]["results"] = {
                **record["resolutions"][key]["results"],
                "c": "broken: x",
            }
    best, stretches = render.best_windows(record)
    assert best == 2
    assert stretches[0][0] == first and stretches[0][2] == ("c",)
    assert any(f == ("a",) for _, _, f in stretches)  # after flask 2.0: all but a
    line = render.headline(record)
    assert line.startswith("**No reader who installed between")
    assert "(all but `c`)" in line and "(all but `a`)" in line


def test_evidence_says_when_the_culprit_search_was_cut_short_and_shows_notes(monkeypatch):
    record = json.loads(json.dumps(small_record()))
    change = record["changes"][0]
    monkeypatch.setitem(render.NOTES, ("a", "flask", "2.0"), "flask 2.0 did it")
    page = render.render(record, chart=None)
    assert "- why: flask 2.0 did it." in page
    assert page.count("- why:") == 1  # only under the change whose culprit it names
    change["culprits"] = [
        {"packages": [], "releases": [], "confirmed_by": None, "tried": [["flask"]], "searched": False}
    ]
    page = render.render(record, chart=None)
    assert "culprit search cut short by the time budget; tried: flask" in page


def test_evidence_is_probed_again_through_the_readers_runner(monkeypatch):
    from harness.session import Options
    from harness.timeline import run

    record = small_record()
    keys = run.evidence_keys(record)
    pins = {k: tuple(sorted(r["pins"].items())) for k, r in record["resolutions"].items()}
    session = type("S", (), {})()
    session.options = Options(claims_runner="fork")
    prober = Prober(session, None, [])  # type: ignore[arg-type]
    prober.pins, prober.results = pins, {k: r["results"] for k, r in record["resolutions"].items()}
    odd = keys[0]
    calls: list[tuple[str, str]] = []

    def fake_probe(self, key, p, s):
        calls.append((key, s.options.claims_runner))
        out = dict(prober.results[key])
        if key == odd:
            out["c"] = "broken: only in a real process"
        return out

    monkeypatch.setattr(run.Prober, "_probe", fake_probe)
    check = run.check_runner(record, prober, "subprocess")
    assert sorted(k for k, _ in calls) == sorted(keys) and {r for _, r in calls} == {"subprocess"}
    assert session.options.claims_runner == "fork"  # restored after the check
    assert check["differ"] == {odd: ["c"]} and check["not_checked"] == []
    # incremental: what an earlier check probed is not probed again
    calls.clear()
    again = run.check_runner(record, prober, "subprocess", known=check["results"])
    assert calls == [] and again["differ"] == check["differ"]
    page = render.render({**record, "search_runner": "fork", "runner_check": check}, chart=None)
    assert f"{len(keys) - 1} of {len(keys)} give the same result" in page and f"`{odd}` (c)" in page


def test_a_long_result_is_cut_so_that_what_changed_stays_in_view():
    before = "holds: " + "same words " * 20 + "(AttributeError: 'NoneType' object has no attribute 'replace')"
    after = (
        "holds: " + "same words " * 20 + "(AttributeError: 'NoneType' object has no attribute 'drivername')"
    )
    cell = render._changed_cell(before, after)
    assert "drivername" in cell and len(cell) <= 160 and " … " in cell
    assert render._changed_cell("", after) == render._cell(after)  # the first window: the start
