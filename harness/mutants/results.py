"""What a run against a mutated copy found, and the table that shows it.

Pure functions on plain data: the JUnit XML pytest wrote becomes the first failing test and its
first line; the outcomes become a rich table (terminal) and a Markdown page. Caught or missed is
decided here once: a run that failed (any failing or erroring test, or a non-zero exit without
one, e.g. an unused snapshot) caught the fault; a run that passed missed it.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.table import Table

CAUGHT = "caught"
MISSED = "missed"
BROKEN = "not run"  # the fault could not be seeded or the run could not start


@dataclass(frozen=True)
class Failure:
    test: str  # e.g. "claims/catalogue.yaml::migrate_listing[current]"
    line: str  # the first line of its failure message


@dataclass
class Outcome:
    fault: str
    status: str  # CAUGHT, MISSED or BROKEN
    failure: Failure | None = None
    failures: int = 0  # failing tests seen (the run stops at the first unless told otherwise)
    seconds: float = 0.0
    why: str = ""  # the fault's realism note
    would_catch: str = ""  # for a missed fault: the check that would catch it
    detail: str = ""  # for BROKEN: what went wrong


@dataclass(frozen=True)
class RunResult:
    """One pytest run: its exit code, its JUnit XML, the tail of its output."""

    exit_code: int
    junit_xml: str | None
    output_tail: str = ""
    seconds: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


def _test_id(case: ET.Element) -> str:
    classname = case.get("classname", "")
    name = case.get("name", "")
    # pytest's JUnit classname for a non-Python file is its path with dots: scenarios.columns.add_column.yaml
    for suffix in (".yaml", ".yml", ".py"):
        if classname.endswith(suffix):
            stem = classname[: -len(suffix)].replace(".", "/")
            return f"{stem}{suffix}::{name}"
    return f"{classname}::{name}" if classname else name


# pytest shortens a long junit message to its first lines and adds this note (_pytest/junitxml.py)
_PYTEST_NOTE = re.compile(r"^\[.*; full report in element text\]$")
_PYTEST_E = re.compile(r"^E\s+")  # the prefix of an error line in pytest's own report


def _first_line(text: str | None, full: str | None = None) -> str:
    """The first non-empty line; one that only introduces the next ("scenario 'x' on stack 'y':")
    is joined with it, so the table says what went wrong. pytest's note that it shortened the
    message is not a line of it: the next line is then looked up in `full` (the element text)."""
    lines = [
        ln.strip() for ln in (text or "").splitlines() if ln.strip() and not _PYTEST_NOTE.match(ln.strip())
    ]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    if lines[0].endswith(":") and full:
        rest = [ln.strip() for ln in full.splitlines() if ln.strip()]
        for here, following in zip(rest, rest[1:], strict=False):
            if here.endswith(lines[0]):
                return f"{lines[0]} {_PYTEST_E.sub('', following)}"
    return lines[0]


def failures(junit_xml: str) -> list[Failure]:
    """Every failing or erroring test case, in the order pytest wrote them."""
    root = ET.fromstring(junit_xml)
    found = []
    for case in root.iter("testcase"):
        for tag in ("failure", "error"):
            element = case.find(tag)
            if element is not None:
                line = _first_line(element.get("message"), element.text) or _first_line(element.text)
                found.append(Failure(_test_id(case), line))
                break
    return found


def judge_run(fault: str, run: RunResult, why: str = "") -> Outcome:
    """Caught or missed, from one run against the mutated copy."""
    found = failures(run.junit_xml) if run.junit_xml else []
    if found:
        return Outcome(fault, CAUGHT, found[0], len(found), run.seconds, why)
    if run.exit_code != 0:
        line = _first_line(run.output_tail.splitlines()[-1] if run.output_tail.strip() else "")
        return Outcome(
            fault, CAUGHT, Failure("(session)", f"exit code {run.exit_code}: {line}"), 0, run.seconds, why
        )
    return Outcome(fault, MISSED, None, 0, run.seconds, why)


def dump(outcomes: list[Outcome], intro: str) -> str:
    """The measurement as JSON, so the page can be rendered again (`--render`) without re-running."""
    return json.dumps({"intro": intro, "outcomes": [asdict(o) for o in outcomes]}, indent=1) + "\n"


def load(text: str) -> tuple[list[Outcome], str]:
    data = json.loads(text)
    outcomes = []
    for item in data["outcomes"]:
        failure = Failure(**item.pop("failure")) if item.get("failure") else None
        item.pop("failure", None)
        outcomes.append(Outcome(failure=failure, **item))
    return outcomes, data["intro"]


def summary(outcomes: list[Outcome]) -> str:
    judged = [o for o in outcomes if o.status != BROKEN]
    caught = sum(o.status == CAUGHT for o in judged)
    share = f"{100 * caught / len(judged):.0f}%" if judged else "-"
    broken = len(outcomes) - len(judged)
    tail = f", {broken} not run" if broken else ""
    return f"{caught} of {len(judged)} faults caught ({share}){tail}"


def table(outcomes: list[Outcome]) -> Table:
    t = Table(title="verification power: seeded faults", title_justify="left", show_lines=False)
    t.add_column("fault", no_wrap=True)
    t.add_column("result", no_wrap=True)
    t.add_column("first failing test", overflow="fold")
    t.add_column("its first line", overflow="fold")
    style = {CAUGHT: "green", MISSED: "bold red", BROKEN: "yellow"}
    for o in outcomes:
        test = o.failure.test if o.failure else ("-" if o.status == MISSED else o.detail)
        line = o.failure.line if o.failure else ""
        t.add_row(o.fault, f"[{style[o.status]}]{o.status}[/]", test, line)
    t.caption = summary(outcomes)
    return t


def print_table(outcomes: list[Outcome], console: Console | None = None) -> None:
    (console or Console(width=200)).print(table(outcomes))


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(outcomes: list[Outcome], intro: str) -> str:
    """The page: the intro (how it was run), the table, and for every missed fault the check
    that would catch it."""
    lines = [intro.rstrip(), "", f"**{summary(outcomes)}.**", ""]
    lines += ["| fault | result | first failing test | its first line |", "|---|---|---|---|"]
    for o in outcomes:
        test = o.failure.test if o.failure else ("-" if o.status == MISSED else _cell(o.detail))
        line = o.failure.line if o.failure else ""
        lines.append(f"| `{o.fault}` | {o.status} | {_cell(test)} | {_cell(line)} |")
    missed = [o for o in outcomes if o.status == MISSED]
    if missed:
        lines += ["", "## Missed faults, and the check that would catch each", ""]
        for o in missed:
            lines.append(f"- `{o.fault}` ({o.why}): {o.would_catch or 'no check proposed yet.'}")
    lines += ["", "## The faults", "", "| fault | why it is realistic |", "|---|---|"]
    lines += [f"| `{o.fault}` | {_cell(o.why, 300)} |" for o in outcomes]
    return "\n".join(lines) + "\n"
