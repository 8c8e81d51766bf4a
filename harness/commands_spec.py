"""Every `flask db` command a scenario can run, with its options, and the argv a reader types for it.

One table (`SPECS`) says, per command, which scenario keys it takes and which command-line flag each
becomes, so the schema (``scenario.schema.json``), the argv, the label in reports and the docs all
speak of the same options. The table follows Flask-Migrate's own ``cli.py`` (checked against
Flask-Migrate 2.5 to 4.x): `edit` is missing on purpose (it opens an editor; a scenario uses the
edit command instead), and `depends_on` is kept although no Flask-Migrate release accepts
``--depends-on``, so that a scenario can show exactly that.

Revision ids are never written into a scenario: they change on every run. A scenario refers to a
revision its run created as ``<rev1>``, ``<rev2>``... (in order of creation, the same numbering the
snapshots use) or as ``<rev:message>`` (the revision whose message is that text); `resolve`
replaces those references with the real ids before the command runs.

Pure data and text; imports nothing of the harness, so the scenario parser and the executor can
both use it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

FLAG, VALUE, VALUES, ARGUMENT, ARGUMENTS = "flag", "value", "values", "argument", "arguments"


@dataclass(frozen=True)
class Option:
    key: str  # the scenario's key (snake_case)
    flag: str  # the CLI flag ("" for a positional argument)
    kind: str  # FLAG, VALUE, VALUES (repeated flag), ARGUMENT, ARGUMENTS (positionals)
    revision: bool = False  # the value names revisions: `<revN>` references are resolved in it


@dataclass(frozen=True)
class Spec:
    name: str
    main: str | None  # the option a bare scalar value sets (`migrate: a message`)
    options: tuple[Option, ...]
    writes_revision: bool = False  # the command writes a revision file (recorded like migrate's)

    def option(self, key: str) -> Option:
        return next(o for o in self.options if o.key == key)


_MSG = Option("message", "-m", VALUE)
_SQL = Option("sql", "--sql", FLAG)
_TAG = Option("tag", "--tag", VALUE)
_X = Option("x_arg", "-x", VALUES)
_REV = Option("revision", "", ARGUMENT, revision=True)
_VERBOSE = Option("verbose", "-v", FLAG)
_REVISION_OPTIONS = (
    _MSG,
    _SQL,
    Option("head", "--head", VALUE, revision=True),
    Option("splice", "--splice", FLAG),
    Option("branch_label", "--branch-label", VALUE),
    Option("version_path", "--version-path", VALUE),
    Option("rev_id", "--rev-id", VALUE),
)

SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec("init", None, (Option("multidb", "--multidb", FLAG),)),
        Spec("migrate", "message", (*_REVISION_OPTIONS, _X), writes_revision=True),
        Spec(
            "revision",
            "message",
            (
                *_REVISION_OPTIONS,
                Option("autogenerate", "--autogenerate", FLAG),
                Option("depends_on", "--depends-on", VALUE, revision=True),
            ),
            writes_revision=True,
        ),
        Spec(
            "merge",
            "revisions",
            (
                _MSG,
                Option("branch_label", "--branch-label", VALUE),
                Option("rev_id", "--rev-id", VALUE),
                Option("revisions", "", ARGUMENTS, revision=True),
            ),
            writes_revision=True,
        ),
        Spec("upgrade", "revision", (_SQL, _TAG, _X, _REV)),
        Spec("downgrade", "revision", (_SQL, _TAG, _X, _REV)),
        Spec("stamp", "revision", (_SQL, _TAG, Option("purge", "--purge", FLAG), _REV)),
        Spec("show", "revision", (_REV,)),
        Spec(
            "history",
            "rev_range",
            (
                Option("rev_range", "-r", VALUE, revision=True),
                _VERBOSE,
                Option("indicate_current", "-i", FLAG),
            ),
        ),
        Spec(
            "heads",
            None,
            (_VERBOSE, Option("resolve_dependencies", "--resolve-dependencies", FLAG)),
        ),
        Spec("branches", None, (_VERBOSE,)),
        Spec("current", None, (_VERBOSE,)),
        Spec("check", None, ()),
    )
}
FLASK_COMMANDS = tuple(SPECS)
HARNESS_COMMANDS = ("sql", "query", "edit")  # run by the harness itself, not by `flask db`
COMMAND_NAMES = (*FLASK_COMMANDS, *HARNESS_COMMANDS)


class RevisionReferenceError(ValueError):
    """A `<revN>`/`<rev:message>` reference to a revision the run has not created (yet)."""


REFERENCE = re.compile(r"<rev(\d+)>|<rev:([^<>]+)>")


def resolve(text: str, revisions: Sequence[tuple[str, str]]) -> str:
    """Replace ``<revN>`` and ``<rev:message>`` in `text` by the ids of the run's revisions.

    `revisions` is (id, message) in order of creation. An unknown reference raises
    `RevisionReferenceError` with a sentence that lists what exists.
    """

    def known() -> str:
        listed = [f"<rev{i}> ({msg!r})" for i, (_, msg) in enumerate(revisions, start=1)]
        return ", ".join(listed) or "none yet"

    def repl(match: re.Match[str]) -> str:
        if match.group(1):
            index = int(match.group(1))
            if 1 <= index <= len(revisions):
                return revisions[index - 1][0]
            raise RevisionReferenceError(
                f"{match.group(0)} names no revision of this run (created so far: {known()})"
            )
        wanted = match.group(2)
        found = [rev for rev, msg in revisions if msg == wanted]
        if len(found) == 1:
            return found[0]
        how = "several revisions have" if found else "no revision of this run has"
        raise RevisionReferenceError(
            f"{match.group(0)}: {how} the message {wanted!r} (created so far: {known()})"
        )

    return REFERENCE.sub(repl, text)


def options_of(name: str, arg: Any) -> dict[str, Any]:
    """A command's options from the scenario's value: null, a scalar (the main option) or a mapping."""
    spec = SPECS[name]
    if arg is None:
        return {}
    if isinstance(arg, dict):
        return dict(arg)
    if spec.main is None:
        raise ValueError(f"`{name}` takes no value")
    main = spec.option(spec.main)
    if main.kind in (ARGUMENTS, VALUES) and isinstance(arg, str):
        return {spec.main: arg.split()}
    return {spec.main: arg if isinstance(arg, list) else str(arg)}


def argv(name: str, options: dict[str, Any], resolver: Callable[[str], str] = lambda s: s) -> list[str]:
    """The arguments after ``flask db`` for one command, in Flask-Migrate's option order."""
    spec = SPECS[name]
    out = [name]
    positionals: list[str] = []
    for option in spec.options:
        if option.key not in options:
            continue
        value = options[option.key]
        values = value if isinstance(value, list) else [value]
        texts = [resolver(str(v)) if option.revision else str(v) for v in values]
        if option.kind == FLAG:
            out += [option.flag] if value else []
        elif option.kind == VALUE:
            out += [option.flag, texts[0]]
        elif option.kind == VALUES:
            for text in texts:
                out += [option.flag, text]
        else:
            positionals += texts
    # a positional that starts with "-" (downgrade -1) would be read as an option without "--"
    return out + (["--"] if any(p.startswith("-") for p in positionals) else []) + positionals


def label(name: str, options: dict[str, Any]) -> str:
    """The command line as a reader types it, revision references left symbolic."""
    return "flask db " + shlex.join(argv(name, options))


# --- output kept in the snapshot --------------------------------------------------------------

# `show` and `history -v` print "Create Date: 2026-11-26 19:14:02.123456" and `--sql` prints
# timestamps nowhere else: the date is the only volatile text the id placeholders do not cover.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:?\d{2})?")


# `current -v` names the database with a masked password and the throwaway server's port
_URL = re.compile(r"postgresql(\+\w+)?://[^\s/]+/[^\s:]+")


def normalise_output(text: str) -> str:
    """A command's stdout as the snapshot keeps it: dates replaced, trailing spaces dropped."""
    lines = [
        _URL.sub("<database-url>", _DATE.sub("<date>", line)).rstrip()
        for line in text.strip("\n").splitlines()
    ]
    return "\n".join(lines) + "\n" if lines else ""


# --- query results ----------------------------------------------------------------------------

QUERY_ROW_LIMIT = 200
QUERY_CHAR_LIMIT = 20_000


def cap_rows(rows: list[list[Any]]) -> tuple[list[list[Any]], int | None]:
    """At most QUERY_ROW_LIMIT rows and about QUERY_CHAR_LIMIT characters of them, and the total
    when rows were left out (None otherwise): a snapshot holds evidence, not a table dump."""
    kept: list[list[Any]] = []
    size = 0
    for row in rows:
        size += len(repr(row))
        if len(kept) >= QUERY_ROW_LIMIT or size > QUERY_CHAR_LIMIT:
            return kept, len(rows)
        kept.append(row)
    return kept, None
