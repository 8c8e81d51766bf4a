"""docs/timeline.md and docs/timeline.svg from the record (docs/timeline.json).

Pure of the network and the server: everything shown is in the record, so the page can be
regenerated (`python -m harness.timeline.render`) and two renders of one record are identical.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from harness.judge import BROKEN, DRIFTED, HOLDS, NOT_CHECKED

COLOURS = {HOLDS: "#2e7d32", DRIFTED: "#f9a825", BROKEN: "#c62828", NOT_CHECKED: "#9e9e9e"}
OTHER_COLOUR = "#6a1b9a"  # not installable
COMMAND = "tox -e timeline"
# Why a culprit release changes a claim, where we looked: (claim or "*", package, version) ->
# explanation, shown under a change's evidence only while the record names that release as (one of)
# its culprit(s); so a note can never outlive the finding it explains.
NOTES: dict[tuple[str, str, str], str] = {
    ("db_command_added", "click", "8.1.8"): (
        "a reader saw this; it is not the harness. Flask 3.1.0 reads `.flaskenv` in the callback of its "
        "`--env-file` option; under click 8.1.8 `flask --help` is answered before that callback has run "
        "(under click 8.1.7, with the same Flask, after it). So the app is imported without the `.flaskenv` "
        "lines: `DATABASE_URL` is unset, Flask-SQLAlchemy refuses to start (RuntimeError: Either "
        "'SQLALCHEMY_DATABASE_URI' or 'SQLALCHEMY_BINDS' must be set.), Flask prints that traceback and "
        "lists only its own commands. Checked by hand on the first changed resolution: bare `flask` (no "
        "argument) still lists `db`, and so does `flask --help` with `DATABASE_URL` exported in the shell; "
        "every `flask db` command works (`install_line` holds). The harness's environment has no "
        "`FLASK_APP` or `DATABASE_URL`, like a reader who relies on `.flaskenv`. Reported upstream as "
        "pallets/flask#5673"
    ),
    ("db_command_added", "flask", "3.1.1"): (
        "Flask 3.1.1 treats a lone `--help` like no argument: it loads `--env-file` (so `.flaskenv`) and "
        "`--app` before answering (pallets/flask#5674, the fix of #5673), and `flask --help` lists `db` again"
    ),
    ("*", "sqlalchemy", "2.1.0"): (
        "SQLAlchemy 2.1 makes `postgresql://` mean the psycopg (version 3) driver, where 2.0 meant "
        "psycopg2 (checked: `sqlalchemy.dialects.postgresql.dialect.driver` is `psycopg2` in 2.0.54, "
        "`psycopg` in 2.1.0), and no longer pulls in greenlet. The article installs psycopg2-binary only, "
        "so the app cannot create its engine (ModuleNotFoundError: No module named 'psycopg'): every "
        "`flask db` command fails and every claim that needs one is not checked. greenlet's removal "
        "alone changes nothing (tried)"
    ),
    ("flask_env_development", "flask", "2.3.1"): (
        "Flask 2.3 removed `FLASK_ENV` (deprecated in 2.2). blinker is not a second cause: Flask 2.3 "
        "requires it (a new dependency), so Flask 2.3 alone does not even import (No module named "
        "'blinker'); the pair is the smallest change that runs"
    ),
}


def verdict_of(result: str) -> str:
    return result.split(":", 1)[0]


def day_results(record: dict[str, Any]) -> dict[str, dict[str, str]]:
    """day -> claim -> result, for every resolved day that was probed."""
    res = record["resolutions"]
    claims = claim_ids(record)
    out = {}
    for day, key in record["days"].items():
        if key and key not in res:
            continue  # resolved, never probed: a run cut short by its budget (see "unrefined")
        out[day] = (
            res[key]["results"] if key else {c: "not installable: the line does not resolve" for c in claims}
        )
    return out


def claim_ids(record: dict[str, Any]) -> list[str]:
    for entry in record["resolutions"].values():
        return list(entry["results"])
    return []


def windows(record: dict[str, Any], claim: str) -> list[tuple[str, str, str]]:
    """(from, to, result): consecutive resolved days with one result, to the day before the next."""
    per_day = day_results(record)
    out: list[list[str]] = []
    for day in sorted(per_day):
        result = per_day[day][claim]
        if out and out[-1][2] == result:
            continue
        if out:
            out[-1][1] = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
        out.append([day, day, result])
    if out:
        out[-1][1] = record["end"]
    return [(a, b, r) for a, b, r in out]


def all_hold_windows(record: dict[str, Any]) -> list[tuple[str, str]]:
    per_day = day_results(record)
    days = sorted(per_day)
    out: list[list[str]] = []
    for i, day in enumerate(days):
        ok = all(verdict_of(r) == HOLDS for r in per_day[day].values())
        nxt = days[i + 1] if i + 1 < len(days) else None
        to = (date.fromisoformat(nxt) - timedelta(days=1)).isoformat() if nxt else record["end"]
        if ok and out and out[-1][1] == (date.fromisoformat(day) - timedelta(days=1)).isoformat():
            out[-1][1] = to
        elif ok:
            out.append([day, to])
    return [(a, b) for a, b in out]


def best_windows(record: dict[str, Any]) -> tuple[int, list[tuple[str, str, tuple[str, ...]]]]:
    """The most claims that held together, and every stretch of days where they did, each with the
    claims that did not hold there (a stretch ends where that set changes)."""
    per_day = day_results(record)
    days = sorted(per_day)
    failing = [tuple(sorted(c for c, r in per_day[d].items() if verdict_of(r) != HOLDS)) for d in days]
    fewest = min(len(f) for f in failing)
    out: list[list[Any]] = []
    for i, day in enumerate(days):
        nxt = days[i + 1] if i + 1 < len(days) else None
        to = (date.fromisoformat(nxt) - timedelta(days=1)).isoformat() if nxt else record["end"]
        if len(failing[i]) != fewest:
            continue
        if out and out[-1][2] == failing[i] and out[-1][1] == _day_before(day):
            out[-1][1] = to
        else:
            out.append([day, to, failing[i]])
    return len(claim_ids(record)) - fewest, [(a, b, f) for a, b, f in out]


def _day_before(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def _start(record: dict[str, Any], day: str) -> str:
    """A window's first day, or the span it lies in when the bisection did not get down to one day."""
    days = sorted(day_results(record))
    i = days.index(day)
    if i == 0 or date.fromisoformat(days[i - 1]) + timedelta(days=1) == date.fromisoformat(day):
        return day
    after = (date.fromisoformat(days[i - 1]) + timedelta(days=1)).isoformat()
    return f"(between {after} and {day}, not bisected)"


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _changed_cell(before: str, text: str, limit: int = 160) -> str:
    """A window's result, cut so that what differs from the window before stays in view."""
    common = next(
        (i for i, (x, y) in enumerate(zip(before, text, strict=False)) if x != y), min(len(before), len(text))
    )
    if len(text) <= limit or common < limit - 40:
        return _cell(text, limit)
    cut = text.rfind(" ", 0, common - 30) + 1
    return _cell(text[:60].rsplit(" ", 1)[0] + " … " + text[cut:], limit)


def _culprit_text(change: dict[str, Any]) -> str:
    if change["culprits"] and not change["culprits"][0].get("searched", True):
        return "culprit search cut short by the time budget"
    if not change["culprits"] or not change["culprits"][0]["packages"]:
        tried = sum(len(c["tried"]) for c in change["culprits"])
        return f"no single package or pair reproduces it ({tried} runs)"
    parts = []
    for culprit in change["culprits"]:
        rel = " + ".join(
            f"{r['package']} {r['from'] or '(absent)'} → {r['to'] or '(removed)'} "
            f"(uploaded {r['uploaded'][:10] or '?'})"
            for r in culprit["releases"]
        )
        anchor = f"#culprit-{change['claim']}-{change['day']}".replace("_", "-")
        parts.append(f"[{rel}]({anchor})" + (" — only together" if len(culprit["packages"]) > 1 else ""))
    return "; ".join(parts)


def headline(record: dict[str, Any]) -> str:
    held = all_hold_windows(record)
    if held:
        spans = ", ".join(f"{a} and {b}" for a, b in held)
        return f"**Every claim held for readers who installed between {spans}.**"
    best, stretches = best_windows(record)
    total = len(claim_ids(record))
    where = "; ".join(
        f"between {a} and {b} (all but {', '.join(f'`{c}`' for c in failing)})" for a, b, failing in stretches
    )
    return (
        f"**No reader who installed between {record['start']} and {record['end']} saw every claim hold.** "
        f"The most that held together was {best} of {total}, for readers who installed {where}."
    )


def render(record: dict[str, Any], chart: str | None = "timeline.svg") -> str:
    claims = claim_ids(record)
    lines = [
        "# The truth timeline",
        "",
        f"Generated by `{COMMAND}` (`python -m harness.timeline.run`) from the record `docs/timeline.json`; "
        "do not edit by hand.",
        "",
        headline(record),
        "",
        f"For every day from {record['start']} to {record['end']}, the article's install line "
        f"(`{' '.join(record['line'])}`) resolved as a reader resolved it that day (uv `--exclude-newer`), "
        "the article followed on it against a real PostgreSQL, and each claim checked. A claim's *result* is "
        "its verdict and its evidence with version numbers and revision ids taken out; a window ends where "
        "the result changes.",
        "",
        "How the days were chosen: a grid of one day every "
        f"{record['step_days']} days, then bisection of every gap whose two ends differ, down to one day, "
        "split at the days a release of one of the gap's packages was uploaded (the only days a resolution "
        "can change on). Days that resolve to the same pins share one environment and one probe. "
        "**Blind spot:** two grid days with the same results are taken to agree throughout; a change that "
        "reverted before the next grid day is not seen.",
        "",
        *_runners(record),
        "What differs from the reader's machine (applies to every row):",
        "",
        f"- seed: `{record['seed']['package']}` as of the day — {record['seed']['reason']}.",
    ]
    for ex in record["exemptions"]:
        lines.append(f"- exemption: `{ex['package']}` before {ex['until']} — {ex['reason']}.")
    errors = record.get("resolve_errors") or {}
    if errors:
        lines.append("")
        lines.append("Days where the line cannot be resolved at all:")
        lines += [f"- {d}: {e}" for d, e in sorted(errors.items())]
    per_day = day_results(record)
    uninstallable = sorted(d for d, r in per_day.items() if verdict_of(r[claims[0]]) == "not installable")
    if uninstallable:
        lines.append("")
        lines.append(f"Days where the line resolves but does not install: {', '.join(uninstallable)}.")
    if record.get("partial"):
        lines += [
            "",
            "**Partial run** (the time budget ran out): the result changes somewhere inside each of "
            "these gaps, which were not bisected: "
            + (", ".join(f"{a} … {b}" for a, b in record.get("unrefined", [])) or "none")
            + "; changes whose culprit search was cut short say so.",
        ]
    if chart:
        lines += ["", f"![One lane per claim, coloured by verdict; culprit releases marked]({chart})", ""]
    lines += [
        "## Claims",
        "",
        "| claim | windows (from → to: result) | changes and their culprit |",
        "|---|---|---|",
    ]
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for change in record["changes"]:
        by_claim.setdefault(change["claim"], []).append(change)
    for claim in claims:
        wins = "<br>".join(
            f"{_start(record, a)} → {b}: {_changed_cell(prev, r)}"
            for (_, _, prev), (a, b, r) in zip(
                [(None, None, "")] + windows(record, claim), windows(record, claim), strict=False
            )
        )
        chg = "<br>".join(f"{c['day']}: {_culprit_text(c)}" for c in by_claim.get(claim, [])) or "none"
        lines.append(f"| `{claim}` | {wins} | {chg} |")
    lines += _by_day(record)
    lines += _eras(record)
    lines += _scenarios(record)
    lines += ["", "## Culprits: the evidence", ""]
    lines.append(
        "Each change: the last good day's resolution and the first changed day's, the pins that differ, "
        "and the run that changed only the culprit package(s) from the last good resolution, with both "
        "results."
    )
    for change in record["changes"]:
        lines += _evidence(record, change)
    return "\n".join(lines) + "\n"


def _by_day(record: dict[str, Any]) -> list[str]:
    """The changes grouped by day: the release(s) behind each and the claims it moved."""
    days: dict[str, dict[str, Any]] = {}
    for change in record["changes"]:
        entry = days.setdefault(change["day"], {"culprits": {}, "claims": []})
        text = _culprit_text(change)  # linked to this change's evidence; one link per release
        entry["culprits"].setdefault(text.split("](")[0], text)
        entry["claims"].append(
            f"`{change['claim']}` {verdict_of(change['old'])} → {verdict_of(change['new'])}"
        )
    if not days:
        return []
    out = [
        "",
        "## Changes, by day",
        "",
        "The first day a reader's install gave a different result, the release that did it (confirmed by a "
        "run that changed only that package; the evidence is below), and the claims it moved (verdict "
        "before → after; a verdict can stay while its evidence changes).",
        "",
        "| day | culprit release | claims |",
        "|---|---|---|",
    ]
    for day in sorted(days):
        culprits = "; ".join(days[day]["culprits"].values())
        out.append(f"| {day} | {culprits} | {', '.join(days[day]['claims'])} |")
    return out


def _runners(record: dict[str, Any]) -> list[str]:
    check = record.get("runner_check")
    search = record.get("search_runner", "subprocess")
    if not check:
        return [f"Every probe ran its commands through the `{search}` runner.", ""]
    agree = len(check["results"]) - len(check["differ"])
    text = (
        f"The search probed through the `{search}` runner (the stack's own `flask` console script, forked "
        "from a parent that has already imported the libraries: several times faster a probe; "
        "docs/performance.md). Every resolution named as evidence below was probed again through the "
        f"`{check['runner']}` runner, one process per command as a reader's shell runs them: "
        f"{agree} of {len(check['results'])} give the same result for every claim"
    )
    if check["differ"]:
        text += "; these differ: " + "; ".join(
            f"`{k}` ({', '.join(claims)})" for k, claims in sorted(check["differ"].items())
        )
    if check.get("not_checked"):
        text += f"; not probed again (time budget): {', '.join(f'`{k}`' for k in check['not_checked'])}"
    return [text + ".", ""]


def _checked(record: dict[str, Any], key: str | None, claim: str) -> str:
    """What the reader's runner said about one evidence resolution, for one claim."""
    check = record.get("runner_check")
    if not check or not key:
        return ""
    got = check["results"].get(key)
    if got is None:
        return f"; not probed again through the `{check['runner']}` runner (time budget)"
    same = got.get(claim) == record["resolutions"][key]["results"].get(claim)
    if same:
        return f"; the same through the `{check['runner']}` runner"
    return f"; through the `{check['runner']}` runner: " + _cell(got.get(claim, "(no result)"), 300)


def _evidence(record: dict[str, Any], change: dict[str, Any]) -> list[str]:
    res = record["resolutions"]
    old = res.get(change["old_resolution"] or "", {}).get("pins", {})
    new = res.get(change["new_resolution"] or "", {}).get("pins", {})
    diff = sorted(n for n in set(old) | set(new) if old.get(n) != new.get(n))
    out = [
        "",
        f"### culprit {change['claim']} {change['day']}",
        "",
        f"- last good day {change['last_good_day']} (resolution `{change['old_resolution']}`): "
        + _cell(change["old"], 400)
        + _checked(record, change["old_resolution"], change["claim"]),
        f"- first changed day {change['day']} (resolution `{change['new_resolution']}`): "
        + _cell(change["new"], 400)
        + _checked(record, change["new_resolution"], change["claim"]),
        "- pins that differ: "
        + (", ".join(f"{n} {old.get(n, '-')} → {new.get(n, '-')}" for n in diff) or "none"),
    ]
    for culprit in change["culprits"]:
        tried = ", ".join("+".join(t) for t in culprit["tried"]) or "nothing"
        if not culprit.get("searched", True):
            out.append(f"- culprit search cut short by the time budget; tried: {tried}")
            continue
        if not culprit["packages"]:
            out.append(f"- no single package or pair reproduces the change; tried: {tried}")
            continue
        key = culprit["confirmed_by"]
        result = res.get(key, {}).get("results", {}).get(change["claim"], "(not recorded)")
        swapped = ", ".join(
            f"{r['package']} {r['from'] or '(absent)'} → {r['to'] or '(removed)'}"
            for r in culprit["releases"]
        )
        out.append(
            f"- confirmed: the last good resolution with only {swapped} changed (resolution `{key}`) gives "
            f"{_cell(result, 400)}" + _checked(record, key, change["claim"])
        )
    notes = [
        NOTES.get((change["claim"], r["package"], r["to"])) or NOTES.get(("*", r["package"], r["to"]))
        for culprit in change["culprits"]
        for r in culprit.get("releases", [])
    ]
    out += [f"- why: {note}." for note in dict.fromkeys(n for n in notes if n)]
    return out


def _eras(record: dict[str, Any]) -> list[str]:
    eras = record.get("eras")
    if not eras:
        return []
    out = [
        "",
        "## The era stacks of stacks.toml beside the date stack of their time",
        "",
        "Each era stack pins one point in time by hand; the date stack is what the bare line resolved to on "
        "the day named. Verdicts: the era stack's from `claims/verdicts/<stack>.yaml`, the date stack's from "
        "this timeline.",
        "",
        "| stack | day | pins that differ (era stack / date stack; `-`: not installed) "
        "| claims whose verdict differs (era stack / date stack) |",
        "|---|---|---|---|",
    ]
    for name, era in eras.items():
        pins = (
            ", ".join(f"{n} {a or '-'} / {b or '-'}" for n, (a, b) in sorted(era["differ"].items())) or "none"
        )
        verdicts = (
            ", ".join(f"`{c}` {a} / {b}" for c, (a, b) in sorted(era["verdicts_differ"].items())) or "none"
        )
        out.append(f"| {name} | {era['day']} | {pins} | {verdicts} |")
    return out


def _scenarios(record: dict[str, Any]) -> list[str]:
    scen = record.get("scenarios")
    if not scen:
        return []
    out = ["", "## Scenarios on the timeline (`--scenarios`)", "", scen["covered"], ""]
    days = sorted(scen["days"])
    out.append("| scenario | " + " | ".join(days) + " |")
    out.append("|---|" + "---|" * len(days))
    names = sorted({n for d in days for n in scen["days"][d]})
    for name in names:
        out.append(f"| `{name}` | " + " | ".join(scen["days"][d].get(name, "-") for d in days) + " |")
    return out


def chart(record: dict[str, Any], path: Path) -> None:
    """One lane per claim, coloured by verdict; a line at each change labelled with its culprit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    claims = claim_ids(record)
    fig, ax = plt.subplots(figsize=(13, 0.42 * len(claims) + 2.2))
    for lane, claim in enumerate(reversed(claims)):
        for a, b, result in windows(record, claim):
            start = mdates.date2num(date.fromisoformat(a))
            width = mdates.date2num(date.fromisoformat(b) + timedelta(days=1)) - start
            ax.broken_barh(
                [(start, width)], (lane - 0.4, 0.8), color=COLOURS.get(verdict_of(result), OTHER_COLOUR)
            )
    labelled: set[str] = set()
    last_x: dict[int, float] = {}  # per lane: the last label above it (a close one goes inside the lane)
    for change in record["changes"]:
        lane = len(claims) - 1 - claims.index(change["claim"])
        x = mdates.date2num(date.fromisoformat(change["day"]))
        below = lane in last_x and x - last_x[lane] < 200
        last_x[lane] = -1e9 if below else x
        ax.plot([x, x], [lane - 0.45, lane + 0.45], color="black", linewidth=1.2)
        names = [
            " + ".join(f"{r['package']} {r['to']}" for r in c["releases"])
            for c in change["culprits"]
            if c["packages"]
        ]
        label = "; ".join(names) or "?"
        ax.annotate(
            label,
            (x, lane if below else lane + 0.45),
            fontsize=6,
            xytext=(2, 0),
            textcoords="offset points",
            va="center" if below else "baseline",
            bbox={"facecolor": "white", "alpha": 0.8, "pad": 0.5, "linewidth": 0} if below else None,
        )
        labelled.add(label)
    ax.set_yticks(range(len(claims)), list(reversed(claims)), fontsize=8)
    ax.xaxis_date()
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.set_xlim(
        mdates.date2num(date.fromisoformat(record["start"])),
        mdates.date2num(date.fromisoformat(record["end"])),
    )
    ax.set_xlabel("install date (the line resolved as of that day)")
    handles = [Patch(color=c, label=v) for v, c in COLOURS.items()] + [
        Patch(color=OTHER_COLOUR, label="not installable")
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=5, fontsize=8, frameon=False
    )
    ax.set_title(
        "The article's claims by install date; black marks: a change, labelled with its culprit release",
        fontsize=9,
    )
    fig.tight_layout()
    # a fixed hash salt and no date in the metadata: two renders of one record give one file
    matplotlib.rcParams["svg.hashsalt"] = "migrate-harness"
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def write_page(record: dict[str, Any], docs: Path) -> None:
    chart(record, docs / "timeline.svg")
    (docs / "timeline.md").write_text(render(record), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.timeline.render [RECORD]`: regenerate the page and chart from the record."""
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "docs" / "timeline.json"
    write_page(json.loads(path.read_text(encoding="utf-8")), path.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
