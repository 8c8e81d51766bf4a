"""From a `ScenarioRun` to the plain, normalised data a snapshot stores; and the one text
normaliser that scenario snapshots and the claims' transcripts share.

Normalised means: revision ids become ``<rev1>``, ``<rev2>``… in order of creation; the
temporary project, the stack's environment, the database name, URL, password and port become
placeholders; dates, Python's build banner and object addresses become placeholders;
``Create Date`` lines never appear (only function bodies are kept). Two runs of the same
scenario on the same stack therefore give byte-identical observations.

Transcripts. Every ``flask db`` command a scenario runs is kept as a reader sees it: the
command line, the exit code, and its stdout and stderr, each as its own block. The streams are
kept separate, not interleaved, because the order in which two pipes' bytes arrive is not an
observation the harness can make faithfully: Python buffers stdout when it is not a terminal,
so the interleaving would depend on buffer sizes and scheduling (and both runners capture the
two streams separately). What a reader's terminal shows is their union; which stream a line
came on is kept, so Alembic's log (stderr) and click's output (stdout) stay told apart. An
empty stream is left out of the record (no key means nothing was printed on it).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from harness.observe.commands import command_fields
from harness.records import CommandRecord, ScenarioRun, StepRecord
from harness.runners.base import CommandResult, error_line

Subs = list[tuple[re.Pattern[str] | str, str]]

# What differs between runs or machines, whatever the replacements of a run are.
_GENERIC: Subs = [
    # any revision id left (e.g. one Alembic printed for a file that was later removed)
    (re.compile(r"\b[0-9a-f]{12}\b"), "<rev?>"),
    # object addresses in error messages ("<... object at 0x7f82ba738a40>") differ on every run
    (re.compile(r"\b0x[0-9a-f]{6,}\b"), "0x<address>"),
    # `flask shell`'s banner: the interpreter's build ("Python 3.11.7 (main, Dec  8 2023, ...) [GCC 12]")
    (re.compile(r"\bPython \d+\.\d+\.\d+\S* \([^)\n]*\)(?: \[[^\]\n]*\])?"), "Python <python>"),
    # a database URL as `flask db current -v` prints it (masked password) that no run replacement
    # caught (e.g. another driver's spelling)
    (re.compile(r"postgresql(?:\+\w+)?://[^\s/]+/[^\s:]+"), "<database-url>"),
    # dates and times ("Create Date: 2026-11-26 19:05:58.123456", ISO timestamps)
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[+-]\d{2}:?\d{2}|Z)?"), "<date>"),
]


def url_replacements(url: str, name: str = "database") -> dict[str, str]:
    """What a database URL puts into output: itself (with the password shown or hidden) as
    ``<NAME-url>``, its password, and its database's name as ``<NAME>``. (Its port is replaced
    by `substitutions`, in context.)"""
    parts = urlsplit(url)
    out = {url: f"<{name}-url>"}
    if parts.password:
        out[url.replace(f":{parts.password}@", ":***@")] = f"<{name}-url>"
        out[parts.password] = "<password>"
    database = parts.path.lstrip("/")
    if database:
        out[database] = f"<{name}>"
    return out


def substitutions(replacements: dict[str, str], revision_ids: Iterable[str]) -> Subs:
    """The substitutions for one run: its own volatile text (longest first), its revision ids
    in order of creation, the database's port, then the generic patterns."""
    urls = [old for old, new in replacements.items() if new.endswith("-url>") and "://" in old]
    extended = dict(replacements)
    for url in urls:
        extended.update(url_replacements(url, replacements[url][1:-5]))
    subs: Subs = sorted(extended.items(), key=lambda kv: -len(kv[0]))
    for port in sorted({urlsplit(url).port for url in urls} - {None}):
        # psycopg2: 'connection to server at "127.0.0.1", port 54321 failed'; URLs: host:54321
        subs.append((re.compile(rf"(?<=port ){port}\b|(?<=:){port}\b"), "<port>"))
    for index, rev in enumerate(dict.fromkeys(revision_ids), start=1):
        subs.append((rev, f"<rev{index}>"))
    return subs + _GENERIC


_REV_TOKEN = re.compile(r"<rev(\d+)>")
# Lines printed in the iteration order of a set, one per member, with the names that vary taken
# out. Alembic reflects the tables it compares in set order (alembic/autogenerate/compare:
# `for s, tname in existing_tables`, a set of (schema, name) tuples; on Python 3.11 hash(None) is
# None's address, so no hash seed fixes it), and the PostgreSQL dialect logs one line per SERIAL
# column it reflects. Which lines appear depends on that order too: a table already reflected
# through another's foreign key is not reflected again and logs nothing.
SET_ORDERED = (
    (
        re.compile(
            r"^(INFO  \[alembic\.ddl\.postgresql\] Detected sequence named )'[^']*'"
            r"( as owned by \w+ column )'[^']*'"
        ),
        r"\1'<sequence>'\2'<table>(<column>)'",
    ),
)


def _set_ordered(line: str) -> str | None:
    for pattern, template in SET_ORDERED:
        if pattern.search(line):
            return pattern.sub(template, line)
    return None


def order_set_runs(text: str) -> str:
    """Runs of consecutive lines printed in set order, made independent of that order.

    Lines that differ only in the revision they name (`current` and `heads` with two heads:
    revision ids are random on every run) are sorted in order of creation. A run of the lines of
    `SET_ORDERED` becomes one line with the varying names taken out: its wording is still
    observed, its order and length (which vary) are not."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i + 1
        templated = _set_ordered(lines[i])
        if templated is not None:
            while j < len(lines) and _set_ordered(lines[j]) == templated:
                j += 1
            out.append(templated)
            i = j
            continue
        shape = _REV_TOKEN.sub("<rev>", lines[i])
        while shape != lines[i] and j < len(lines) and _REV_TOKEN.sub("<rev>", lines[j]) == shape:
            j += 1
        out += sorted(lines[i:j], key=lambda line: [int(n) for n in _REV_TOKEN.findall(line)])
        i = j
    return "\n".join(out)


def normalise(value: Any, subs: Subs) -> Any:
    """`value` (a string, or lists and dicts of them) with every substitution applied, and runs
    of lines that differ only in a revision put in order (`order_set_runs`)."""
    if isinstance(value, str):
        for old, new in subs:
            value = old.sub(new, value) if isinstance(old, re.Pattern) else value.replace(old, new)
        return order_set_runs(value) if "\n" in value else value
    if isinstance(value, list | tuple):
        return [normalise(v, subs) for v in value]
    if isinstance(value, dict):
        return {normalise(k, subs): normalise(v, subs) for k, v in value.items()}
    return value


def command_line(argv: Sequence[str]) -> str:
    """The command as a reader types it."""
    return shlex.join(argv)


def transcript(result: CommandResult) -> dict[str, Any]:
    """One command's transcript, not yet normalised: exit code, then stdout and stderr as blocks.

    Trailing blanks at the end of a stream are dropped (YAML blocks cannot keep them reliably);
    a timed-out command says so instead of giving an exit code."""
    out: dict[str, Any] = {"exit": result.exit_code} if not result.timed_out else {"timed_out": True}
    for name in ("stdout", "stderr"):
        text = getattr(result, name).rstrip()
        if text:
            out[name] = text + "\n"
    return out


def _command(record: CommandRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"command": record.command.label}
    if record.result is not None:
        out.update(transcript(record.result))
        if not record.result.ok:
            out["error"] = error_line(record.result.output)
    elif record.sql_error is not None:
        out["error"] = record.sql_error.splitlines()[0]
    if record.command.expect_failure or record.command.expect_any:
        out["expect"] = "failure" if record.command.expect_failure else "any"
    if record.rows is not None:
        out["rows"] = record.rows
    out.update(command_fields(record))
    return out


def _step(record: StepRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"name": record.step.name, "commands": [_command(c) for c in record.commands]}
    if record.revisions or any(c.command.name == "migrate" for c in record.commands):
        out["migration"] = {
            "files": len(record.revisions),
            "detected": list(record.detected),
            "revisions": [
                {
                    "revision": rev.revision,
                    "down_revision": rev.down_revision,
                    "message": rev.message,
                    "upgrade": rev.upgrade,
                    "downgrade": rev.downgrade,
                    "upgrade_ops": [op.as_dict() for op in rev.upgrade_ops],
                    "downgrade_ops": [op.as_dict() for op in rev.downgrade_ops],
                }
                for rev in record.revisions
            ],
        }
    out["schema"] = record.schema
    return out


def observe(run: ScenarioRun) -> dict[str, Any]:
    """The snapshot data of one run (without the stack's versions: those go in reports)."""
    data: dict[str, Any] = {
        "scenario": run.scenario.id,
        "title": run.scenario.title,
        "steps": [_step(s) for s in run.steps],
    }
    if run.invariants:
        data["invariants"] = {
            inv.name: "holds"
            if inv.ok
            else (f"fails (known: {inv.known}): " if inv.known else "fails: ") + inv.detail
            for inv in run.invariants
        }
    return normalise(data, substitutions(run.replacements, run.revision_ids))
