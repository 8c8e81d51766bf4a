"""The smallest proven repair: edits of the article's own text that make its steps work today.

A repair is a set of `Edit`s (a line of the article, the text it holds, the text it should hold).
Candidates are read off what failed, never typed in for one article: a missing module suggests
naming the installed driver in ``DATABASE_URL``, adding the package that provides the module to
the install line, or bounding the package whose code imported it below the installed release; a
setting a release removed suggests the one its message names instead. Each candidate is proven
by following the edited article for real: its own stack, built by uv from the edited install line
(cached by its requirements), and its own project with the edited ``.flaskenv``, on the one server
of the session. The search is greedy by rounds: each round tries every candidate the best text so
far suggests, added to it, smallest first, and keeps the one that makes the most claims hold
(ties: fewer broken, then the smaller edit). It stops when no candidate improves the count.

The pure parts (edits, candidate generation, the search) take plain values and a callback, so
they are tested with fakes; `Prover` is the part that runs things.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from harness.claims.article import Article, ArticleError, install_line_numbers, parse_article
from harness.claims.catalogue import Claim
from harness.claims.checks import Verdict, run_check
from harness.claims.probe import Observations, probe
from harness.judge import BROKEN, HOLDS, NOT_CHECKED
from harness.runners import ForkServerError
from harness.server import ServerError
from harness.session import Session
from harness.stacks import Stack, StackError

# The distribution that provides an import name, where the two differ (what `pip install` needs).
PACKAGE_FOR_MODULE = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "dotenv": "python-dotenv"}


class RepairError(Exception):
    """An edit that does not fit the text it is applied to; says which line and what was expected."""


@dataclass(frozen=True)
class Edit:
    """Replace `old` with `new`, where `old` begins on (1-based) `line` of the article."""

    line: int
    old: str
    new: str

    @property
    def size(self) -> int:
        """Characters inserted plus characters deleted."""
        ops = difflib.SequenceMatcher(None, self.old, self.new, autojunk=False).get_opcodes()
        return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")

    def describe(self) -> str:
        old, new = self.old.strip("\n"), self.new.strip("\n")
        if "\n" in old or "\n" in new:
            return f"line {self.line}: replace {old.count(chr(10)) + 1} lines with {new.count(chr(10)) + 1}"
        return f"line {self.line}: `{old}` → `{new}`"


@dataclass(frozen=True)
class Candidate:
    """One change in our words, the failure it answers, and the edits that make it."""

    name: str
    because: str
    edits: tuple[Edit, ...]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.edits)


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """`text` with every edit applied; RepairError when an edit's old text is not at its line.

    Line numbers refer to the text as given: edits are applied from the last line up, so one that
    adds or removes lines does not move the others."""
    for edit in sorted(edits, key=lambda e: -e.line):
        lines = text.splitlines(keepends=True)
        if not 1 <= edit.line <= len(lines):
            raise RepairError(f"edit at line {edit.line}: the text has {len(lines)} lines")
        start = sum(len(ln) for ln in lines[: edit.line - 1])
        at = text.find(edit.old, start)
        if at < 0 or at >= start + len(lines[edit.line - 1]):
            raise RepairError(
                f"edit at line {edit.line}: expected {edit.old.splitlines()[0]!r} there; "
                "the article changed since the repair was found"
            )
        text = text[:at] + edit.new + text[at + len(edit.old) :]
    return text


def _line_of(text: str, predicate: Callable[[str], bool]) -> tuple[int, str] | None:
    for number, line in enumerate(text.splitlines(), 1):
        if predicate(line):
            return number, line
    return None


# -- candidates from failures ------------------------------------------------------------------


def add_requirement(article: Article, requirement: str) -> Edit:
    """Append `requirement` (shell-quoted) to the last line of the from-scratch install command."""
    number = install_line_numbers(article.text)[-1]
    line = article.text.splitlines()[number - 1]
    last = line.split()[-1]
    return Edit(number, last, f"{last} {shlex.quote(requirement)}")


def _missing_module(output: str) -> tuple[str, str | None] | None:
    """(the module, the package whose code imported it) from a traceback ending in ModuleNotFoundError."""
    match = re.search(r"No module named '([\w.]+)'", output)
    if not match:
        return None
    before = output[: match.start()]
    frames = re.findall(r"site-packages/([A-Za-z_][\w]*)/", before)
    return match.group(1).split(".")[0], (frames[-1] if frames else None)


def _minor_bound(version: str) -> str | None:
    parts = version.split(".")
    return f"<{parts[0]}.{parts[1]}" if len(parts) >= 2 and parts[1].isdigit() else None


def candidates_for(
    article: Article, verdicts: dict[str, Verdict], outputs: Sequence[str], versions: dict[str, str]
) -> list[Candidate]:
    """What might repair the failures and drifts seen, smallest first. Pure: reads only its arguments."""
    found: list[Candidate] = []
    failing = any(v.verdict in (BROKEN, NOT_CHECKED) for v in verdicts.values())
    missing = next((m for m in map(_missing_module, outputs) if m), None) if failing else None
    if missing:
        module, importer = missing
        url = article.flaskenv.get("DATABASE_URL", "")
        scheme = url.split("://", 1)[0]
        installed = [p for p in article.install_packages if p.lower().startswith("psycopg2")]
        if module.startswith("psycopg") and "+" not in scheme and installed:
            at = _line_of(article.text, lambda ln: ln.startswith("DATABASE_URL="))
            if at:
                found.append(
                    Candidate(
                        f"name the installed driver (psycopg2) in DATABASE_URL: {scheme}+psycopg2://",
                        f"No module named '{module}': this SQLAlchemy maps {scheme}:// to another driver",
                        (Edit(at[0], f"{scheme}://", f"{scheme}+psycopg2://"),),
                    )
                )
        package = PACKAGE_FOR_MODULE.get(module, module)
        found.append(
            Candidate(
                f"add {package} to the install line",
                f"No module named '{module}'",
                (add_requirement(article, package),),
            )
        )
        installed_version = versions.get(importer.lower()) if importer else None
        if importer and installed_version:
            bound = _minor_bound(installed_version)
            if bound:
                found.append(
                    Candidate(
                        f"bound {importer} to {bound} on the install line (installed: {installed_version})",
                        f"No module named '{module}', imported by {importer} {installed_version}",
                        (add_requirement(article, f"{importer}{bound}"),),
                    )
                )
    for verdict in verdicts.values():
        replaced = re.search(r"removed ([A-Z][A-Z_]+);.*?\b([A-Z][A-Z_]+=\S+) replace", verdict.reason)
        if not replaced:
            continue
        old_key, new_setting = replaced.groups()
        at = _line_of(article.text, lambda ln, k=old_key: ln.startswith(f"{k}="))
        if at:
            found.append(
                Candidate(
                    f"replace the setting {old_key} with {new_setting}",
                    verdict.reason,
                    (Edit(at[0], at[1].strip(), new_setting),),
                )
            )
    unique = list({c.edits: c for c in found}.values())
    return sorted(unique, key=lambda c: c.size)


# -- the search --------------------------------------------------------------------------------


@dataclass
class Trial:
    """One text of the article followed for real: the edits it carries and the verdicts it earned."""

    candidates: tuple[Candidate, ...]
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    observations: Observations | None = None
    article: Article | None = None
    error: str | None = None  # why it could not be followed at all (a stack that does not build...)

    @property
    def edits(self) -> tuple[Edit, ...]:
        return tuple(e for c in self.candidates for e in c.edits)

    @property
    def size(self) -> int:
        return sum(c.size for c in self.candidates)

    def count(self, verdict: str) -> int:
        return sum(v.verdict == verdict for v in self.verdicts.values())

    @property
    def score(self) -> tuple[int, int, int]:
        """More claims holding is better; then fewer broken; then fewer not checked."""
        if self.error:
            return (-1, 0, 0)
        return (self.count(HOLDS), -self.count(BROKEN), -self.count(NOT_CHECKED))


Propose = Callable[[Trial], list[Candidate]]
Evaluate = Callable[[list[tuple[Candidate, ...]]], list[Trial]]


def search(
    base: Trial, propose: Propose, evaluate: Evaluate, max_rounds: int = 4
) -> tuple[Trial, list[Trial]]:
    """The best trial found (`base` when nothing helps) and every trial made, in order."""
    best, tried = base, []
    for _ in range(max_rounds):
        have = set(best.edits)
        fresh = [c for c in propose(best) if not set(c.edits) & have]
        if not fresh:
            break
        trials = evaluate([best.candidates + (c,) for c in fresh])
        tried += trials
        # max() keeps the first of equals: the candidates come smallest first
        top = max(trials, key=lambda t: (t.score, -t.size))
        if top.score <= best.score:
            break
        best = top
    return best, tried


# -- proving candidates for real ---------------------------------------------------------------


def line_stack(session: Session, requirements: tuple[str, ...]) -> str:
    """The name of a stack with exactly these requirements: one the stacks file defines, else a new
    one named by their hash (so its environment is cached by its requirements)."""
    for name, stack in session.stacks.items():
        if stack.requirements == requirements:
            return name
    name = "line_" + hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:10]
    session.stacks[name] = Stack(name, "an article text's install line", requirements, scenarios=False)
    return name


@dataclass
class Prover:
    """Follows edited texts of the article on the session's server, several at once."""

    session: Session
    article: Article
    catalogue: list[Claim]
    workers: int = 2

    def verdicts(self, obs: Observations, article: Article) -> dict[str, Verdict]:
        return {c.id: run_check(c.check, obs, article) for c in self.catalogue}

    def trial(self, candidates: tuple[Candidate, ...], extra: Sequence[Edit] = ()) -> Trial:
        edits = [e for c in candidates for e in c.edits] + list(extra)
        try:
            text = apply_edits(self.article.text, edits)
            article = parse_article(text, self.article.path)
            stack = line_stack(self.session, article.install_packages)
            obs = probe(self.session, stack, article)
        except (RepairError, ArticleError, StackError, ServerError, ForkServerError) as exc:
            return Trial(candidates, error=str(exc).splitlines()[0])
        return Trial(candidates, self.verdicts(obs, article), obs, article)

    def evaluate(self, sets: list[tuple[Candidate, ...]]) -> list[Trial]:
        self.session.server()  # started once, before the threads share it
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(sets)))) as pool:
            return list(pool.map(self.trial, sets))


def propose(trial: Trial) -> list[Candidate]:
    """The candidates a trial's failures and drifts suggest."""
    if trial.article is None or trial.observations is None:
        return []
    obs = trial.observations
    return candidates_for(trial.article, trial.verdicts, obs.all_output, obs.versions)


def find_repair(prover: Prover, base: Trial) -> tuple[Trial, list[Trial]]:
    return search(base, propose, prover.evaluate)


def describe(trial: Trial) -> list[dict[str, Any]]:
    """The repair in words: each candidate with its edits, for reports."""
    return [
        {"change": c.name, "because": c.because, "edits": [e.describe() for e in c.edits]}
        for c in trial.candidates
    ]
