"""The repaired article: the repair applied, and every drifted passage brought up to what a reader
sees today, each as an edit of the article's text computed from what the probe observed.

Passages and where their new text comes from:

- a setting a release replaced: the replacement its message names (the repair's own candidate);
- the ``flask db --help`` listing: the listing the repaired article's stack prints;
- "All of the Alembic commands are there": the Alembic commands flask db lacks, named;
- the output a reader sees and the article does not account for (``no_warnings``): each such
  line printed under the command that prints it, as the reader sees it (its volatile parts,
  a folder, an id, written ``...``). Only a command the article itself shows can carry it.

The install line is the repair's business. A drifted claim with no rewriter is left as it is and
listed, so the verification says plainly what still differs. The text is written at run time (to
``reports/``), never into the repository.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.claims.article import ALEMBIC_SENTENCE, Article
from harness.claims.checks import alembic_commands
from harness.claims.helptext import help_commands
from harness.claims.output import READER_STEPS, UNACCOUNTED, reader_lines, reader_view
from harness.claims.probe import Observations
from harness.claims.repair import Candidate, Edit, Trial, candidates_for
from harness.judge import HOLDS

HELP_START = "Usage: flask db [OPTIONS] COMMAND [ARGS]..."

Rewriter = Callable[[Article, Observations, Trial], Candidate | None]


def _setting(article: Article, obs: Observations, trial: Trial) -> Candidate | None:
    verdict = {"flask_env_development": trial.verdicts["flask_env_development"]}
    found = candidates_for(article, verdict, [], obs.versions)
    return found[0] if found else None


def _help_listing(article: Article, obs: Observations, trial: Trial) -> Candidate | None:
    if obs.db_help is None or not obs.db_help.ok:
        return None
    lines = article.text.splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.strip() == HELP_START)
    end = next(i for i, ln in enumerate(lines) if ln.startswith(ALEMBIC_SENTENCE))
    old = "".join(lines[start:end])
    new = "\n".join(ln.rstrip() for ln in obs.db_help.stdout.strip("\n").splitlines()) + "\n"
    return Candidate(
        "quote the `flask db --help` listing a reader sees today",
        trial.verdicts["db_help_listing"].observed,
        (Edit(start + 1, old, new),),
    )


def _alembic_sentence(article: Article, obs: Observations, trial: Trial) -> Candidate | None:
    if obs.alembic_help is None or obs.db_help is None or article.alembic_exceptions:
        return None
    flask_db = {c.replace("-", "_") for c in help_commands(obs.db_help.stdout)}
    missing = [c for c in alembic_commands(obs.alembic_help.stdout) if c not in flask_db]
    if not missing:
        return None
    number, line = next(
        (n, ln) for n, ln in enumerate(article.text.splitlines(), 1) if ln.startswith(ALEMBIC_SENTENCE)
    )
    sentence = line.split(". ", 1)[0].rstrip(".")
    return Candidate(
        f"say which Alembic command(s) flask db lacks: {', '.join(missing)}",
        trial.verdicts["all_alembic_commands"].observed,
        (Edit(number, sentence, f"{sentence}, except {', '.join(missing)}"),),
    )


def _command_line(article: Article, argv: tuple[str, ...]) -> int | None:
    """The 1-based line where the article has the reader type `argv` (``pipenv run`` or not)."""
    for number, line in enumerate(article.text.splitlines(), 1):
        try:
            words = tuple(shlex.split(line))
        except ValueError:
            continue
        if words[-len(argv) :] == argv and words[: -len(argv)] in ((), ("pipenv", "run")):
            return number
    return None


def _output_lines(article: Article, obs: Observations, trial: Trial) -> Candidate | None:
    """Print each unaccounted line under the command that prints it (when the article shows it)."""
    steps = tuple(s for s in READER_STEPS if s != "db_help")
    by_step = {ran.step: ran.argv for ran in obs.transcript}
    shown: dict[int, list[str]] = {}
    for line in reader_lines(obs, article, steps):
        if line.kind != UNACCOUNTED:
            continue
        step = next(r.step for r in obs.transcript if r.command == line.command and r.step in steps)
        at = _command_line(article, by_step[step])
        if at is None:
            return None  # a line of a command the article never shows: no place to print it
        where = next(r.where for r in obs.transcript if r.step == step)
        text = "  " + re.sub(r"<[a-z][\w:?-]*>", "...", reader_view(line.text.strip(), where))
        if text not in shown.setdefault(at, []):
            shown[at].append(text)
    if not shown:
        return None
    lines = article.text.splitlines(keepends=True)
    edits = tuple(
        Edit(at, lines[at - 1], lines[at - 1] + "".join(f"{t}\n" for t in printed))
        for at, printed in sorted(shown.items())
    )
    count = sum(len(p) for p in shown.values())
    return Candidate(
        f"print the {count} line(s) of output a reader sees that the article does not account for",
        trial.verdicts["no_warnings"].observed,
        edits,
    )


REWRITERS: dict[str, Rewriter] = {
    "flask_env_development": _setting,
    "db_help_listing": _help_listing,
    "all_alembic_commands": _alembic_sentence,
    "no_warnings": _output_lines,
}


@dataclass
class Rewrite:
    """The edits beyond the repair, and the drifted claims no rewriter covers."""

    candidates: list[Candidate]
    left_as_is: list[str]


def rewrite(trial: Trial) -> Rewrite:
    """Edits bringing the drifted passages of `trial`'s text up to date (`trial` is the repair)."""
    if trial.article is None or trial.observations is None:
        return Rewrite([], [])
    out, left = [], []
    have = set(trial.edits)
    for claim, verdict in trial.verdicts.items():
        if verdict.verdict == HOLDS:
            continue
        writer = REWRITERS.get(claim)
        made = writer(trial.article, trial.observations, trial) if writer else None
        if made is None or set(made.edits) & have:
            left.append(claim)
            continue
        out.append(made)
    return Rewrite(out, left)


@dataclass(frozen=True)
class Written:
    text_path: Path
    diff_path: Path
    added: int
    removed: int


def unified_diff(original: str, repaired: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True),
            repaired.splitlines(keepends=True),
            fromfile=f"{name} (as written)",
            tofile=f"{name} (repaired)",
        )
    )


def write_repaired(folder: Path, name: str, original: str, repaired: str) -> Written:
    """The repaired text and its unified diff against the original, written under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem
    text_path, diff_path = folder / f"{stem}.repaired.txt", folder / f"{stem}.repaired.diff"
    text_path.write_text(repaired, encoding="utf-8")
    diff = unified_diff(original, repaired, name)
    diff_path.write_text(diff, encoding="utf-8")
    body = [ln for ln in diff.splitlines() if not ln.startswith(("+++", "---"))]
    added = sum(ln.startswith("+") for ln in body)
    removed = sum(ln.startswith("-") for ln in body)
    return Written(text_path, diff_path, added, removed)
