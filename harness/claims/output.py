"""Every line a reader sees, accounted for: shown or implied by the article, one of Alembic's
routine INFO log lines, or unaccounted.

The claims about output ("no warnings appear", "you should see that the database has
upgraded", "it created a file") are judged from the whole transcript of the commands the
article has the reader run, never by looking for a keyword. Each line of those commands'
stdout and stderr, normalised, is classified by an explicit rule:

- **shown**: the article shows or implies it. The ``flask db --help`` lines the article prints;
  ``flask db init``'s "Creating directory"/"Generating" line for each entry of the tree the
  article shows; ``flask db migrate``'s "Generating" line for the revision file it wrote ("It
  created a file in the migrations/versions directory"); ``flask db upgrade``'s "Running
  upgrade" lines ("you should see that the database has upgraded").
- **routine**: one of Alembic's routine INFO log lines (`ROUTINE`, a precise list of patterns).
- **unaccounted**: anything else. A claim about output is drifted while any line is, and the
  line is quoted as evidence.

Pure functions of a `Ran` (one command's transcript) and the article; tested with fakes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.claims.article import Article
from harness.claims.probe import Observations, Ran

SHOWN, ROUTINE_LINE, UNACCOUNTED = "shown", "routine", "unaccounted"

# The commands the article has the reader run (Observations fields), in the article's order.
# The probe's other commands (`flask --help`, `flask shell`, the drift check, `downgrade base`,
# the .flaskenv variants and plain Alembic) are in the transcript, which is on record, but
# the article says nothing about what they print.
READER_STEPS = (
    "init",
    "migrate",
    "upgrade",
    "recipe_migrate",
    "recipe_upgrade",
    "pending_upgrade",
    "db_help",
)

_INFO = r"INFO  \[{logger}\] "
# Alembic's routine INFO log lines: what every migrate/upgrade logs, whatever the models.
ROUTINE: tuple[re.Pattern[str], ...] = tuple(
    re.compile("^" + _INFO.format(logger=logger) + message + "$")
    for logger, message in (
        (r"alembic\.runtime\.migration", r"Context impl PostgresqlImpl\."),
        (r"alembic\.runtime\.migration", r"Will assume transactional DDL\."),
        (r"alembic\.autogenerate\.compare(?:\.\w+)*", r"Detected added table '\w+'"),
        (
            r"alembic\.ddl\.postgresql",
            # as printed, or as normalised (harness/observe/normalise.py: the names come in set order)
            r"Detected sequence named '(?:\w+|<sequence>)' as owned by integer column "
            r"'(?:\w+\(\w+\)|<table>\(<column>\))', assuming SERIAL and omitting",
        ),
        (r"alembic\.env", r"No changes in schema detected\."),
        # Alembic 1.17 and later, before every autogenerate
        (r"alembic\.runtime\.plugins", r"setting up autogenerate plugin alembic\.autogenerate\.\w+"),
    )
)
_REV = r"<rev(?:\d+|\?)>"  # a normalised revision id
_RUNNING_UPGRADE = re.compile(
    "^"
    + _INFO.format(logger=r"alembic\.runtime\.migration")
    + rf"Running upgrade ({_REV})? ?-> ({_REV}), .+$"
)
_DONE = r"\s+\.\.\.\s+done$"
_GENERATING_REVISION = re.compile(rf"^\s*Generating \S*/migrations/versions/({_REV})_\w+\.py" + _DONE)
_INIT_LINE = re.compile(r"^\s*(?:Creating directory|Generating) '?\S*?/migrations(?:/(\S+?))?'?" + _DONE)


Normaliser = Callable[[str], str] | None


def _text(ran: Ran, stream: str, normalise: Normaliser) -> str:
    text: str = getattr(ran.result, stream)
    return normalise(text) if normalise else text


@dataclass(frozen=True)
class Line:
    command: str  # the command line, as the reader types it
    stream: str  # "stdout" or "stderr"
    text: str  # normalised
    kind: str  # SHOWN, ROUTINE_LINE or UNACCOUNTED
    why: str  # the rule that classified it

    @property
    def quoted(self) -> str:
        return f"`{self.command}` {self.stream}: {self.text}"


def help_block(article: Article) -> list[str]:
    """The lines of the article's `flask db --help` listing, whitespace-normalised."""
    start = article.text.find("Usage: flask db [OPTIONS] COMMAND [ARGS]...")
    end = article.text.find("All of the Alembic commands are there, like", start)
    block = article.text[start:end] if start >= 0 and end > start else ""
    return [" ".join(line.split()) for line in block.splitlines() if line.strip()]


def _shown(step: str, stream: str, text: str, article: Article) -> str | None:
    """The article's reason for showing `text`, or None."""
    flat = " ".join(text.split())
    if step == "db_help" and stream == "stdout" and flat in help_block(article):
        return "the article prints this line of `flask db --help`"
    if step == "init":
        match = _INIT_LINE.match(text)
        entry = match and (match.group(1) or "")
        if match and (entry == "" or entry in article.init_tree or f"{entry}/" in article.init_tree):
            return "the article shows this entry of migrations/"
    if step in ("migrate", "recipe_migrate") and _GENERATING_REVISION.match(text):
        return "the article: it created a file in the migrations/versions directory"
    if step in ("upgrade", "recipe_upgrade", "pending_upgrade") and _RUNNING_UPGRADE.match(text):
        return "the article: you should see that the database has upgraded"
    return None


def classify(ran: Ran, article: Article, normalise: Normaliser = None) -> list[Line]:
    """Every line `ran` printed (normalised with `normalise`, an Observations.normalise), classified."""
    lines = []
    for stream in ("stdout", "stderr"):
        for raw in _text(ran, stream, normalise).splitlines():
            if not raw.strip():
                continue
            line = raw.rstrip()
            why = _shown(ran.step, stream, line, article)
            kind = SHOWN
            if why is None:
                routine = next((p for p in ROUTINE if p.match(line)), None)
                kind, why = (ROUTINE_LINE, "Alembic's routine INFO log") if routine else (UNACCOUNTED, "")
            lines.append(Line(ran.command, stream, line, kind, why))
    return lines


def reader_lines(obs: Observations, article: Article, steps: tuple[str, ...] = READER_STEPS) -> list[Line]:
    """The classified lines of the commands the article has the reader run (`steps`)."""
    out = []
    for ran in obs.transcript:
        if ran.step in steps:
            out += classify(ran, article, obs.normalise)
    return out


def unaccounted(lines: list[Line]) -> list[str]:
    """The unaccounted lines, quoted, each once, in the order a reader meets them."""
    return list(dict.fromkeys(line.quoted for line in lines if line.kind == UNACCOUNTED))


def upgrades_shown(ran: Ran | None, normalise: Normaliser = None) -> list[str]:
    """The "Running upgrade A -> B" steps an upgrade printed, as "A -> B" (A is base from base)."""
    if ran is None:
        return []
    text = _text(ran, "stderr", normalise) + "\n" + _text(ran, "stdout", normalise)
    return [
        f"{m.group(1) or 'base'} -> {m.group(2)}" for m in map(_RUNNING_UPGRADE.match, text.splitlines()) if m
    ]


def revision_files_shown(ran: Ran | None, normalise: Normaliser = None) -> list[str]:
    """The revision files a migrate said it generated (their normalised revision ids)."""
    if ran is None:
        return []
    text = _text(ran, "stdout", normalise) + "\n" + _text(ran, "stderr", normalise)
    return [m.group(1) for m in map(_GENERATING_REVISION.match, text.splitlines()) if m]
