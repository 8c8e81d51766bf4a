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

import contextlib
import difflib
import hashlib
import re
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
        """The change in a line: the words that differ, or how many lines are replaced."""
        old, new = self.old.strip("\n"), self.new.strip("\n")
        if "\n" in old or "\n" in new:
            if new.startswith(old + "\n"):
                return f"after line {self.line}: add {new.count(chr(10)) - old.count(chr(10))} line(s)"
            if new.endswith("\n" + old):
                return f"before line {self.line}: add {new.count(chr(10)) - old.count(chr(10))} line(s)"
            return f"line {self.line}: replace {old.count(chr(10)) + 1} lines with {new.count(chr(10)) + 1}"
        old, new = _differing_words(old, new)
        return f"line {self.line}: `{old}` → `{new}`"


_BOUNDARY = " =:/@,.;()"


def _differing_words(old: str, new: str) -> tuple[str, str]:
    """The part of two lines that differs, widened to whole words (to the nearest space or
    punctuation on either side), so an edit reads the same whether its old text is a word or
    the whole line it sits in."""
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    while head > 0 and old[head - 1] not in _BOUNDARY:
        head -= 1
    while tail > 0 and old[len(old) - tail] not in _BOUNDARY:
        tail -= 1
    return old[head : len(old) - tail], new[head : len(new) - tail]


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
    def verdict_names(self) -> dict[str, str]:
        """Each claim's verdict alone (holds, drifted, ...), as the judge and the record take them."""
        return {claim: v.verdict for claim, v in self.verdicts.items()}

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


def run_inputs(article: Article) -> tuple[Any, ...]:
    """Everything of an article's text that the probe runs: the install line, the .flaskenv
    lines, the model and the migrate message. Two texts equal in these are followed by the very
    same commands, so one run serves both (each is still judged against its own text)."""
    return (
        article.install_packages,
        tuple(article.flaskenv.items()),
        article.owner_model,
        article.migrate_message,
    )


@dataclass
class Prover:
    """Follows edited texts of the article on the session's server, several at once.

    Each distinct run (`run_inputs`) is made once per session: a text whose edits change only
    what the reader reads (a listing, a sentence) is judged on the run of the text it shares
    its steps with. Stacks are built in parallel (uv), and their runners made, before the runs
    start in threads, so no two threads make one stack's runner."""

    session: Session
    article: Article
    catalogue: list[Claim]
    workers: int = 3
    runs: dict[tuple[Any, ...], Observations] = field(default_factory=dict)

    def verdicts(self, obs: Observations, article: Article) -> dict[str, Verdict]:
        return {c.id: run_check(c.check, obs, article) for c in self.catalogue}

    def seed(self, article: Article, obs: Observations) -> None:
        """A run made elsewhere in the session (the first column's probe) of `article`."""
        self.runs[run_inputs(article)] = obs

    def edited(self, candidates: tuple[Candidate, ...], extra: Sequence[Edit] = ()) -> Article:
        edits = [e for c in candidates for e in c.edits] + list(extra)
        return parse_article(apply_edits(self.article.text, edits), self.article.path)

    def prepare(self, articles: Sequence[Article]) -> None:
        """The server, every stack the texts need (built in parallel) and its runner."""
        self.session.server()
        stacks = list(dict.fromkeys(line_stack(self.session, a.install_packages) for a in articles))
        if len(stacks) > 1:  # uv's work is subprocesses: threads build them in parallel
            with ThreadPoolExecutor(max_workers=len(stacks)) as pool:
                list(pool.map(self._env_or_error, stacks))
        for stack in stacks:
            with contextlib.suppress(StackError, ForkServerError):  # the trial says why
                self.session.runner(stack, self.session.options.claims_runner)

    def _env_or_error(self, stack: str) -> None:
        with contextlib.suppress(StackError):  # kept by the session; the trial says why
            self.session.stack_env(stack)

    def beside(self, article: Article) -> str:
        """A stack name of its own for `article`'s run: the same environment under another name,
        so that the run gets a runner (a fork server) of its own and runs beside the session's
        other run on that stack instead of taking turns with it. Call it from the main thread."""
        base = line_stack(self.session, article.install_packages)
        name = f"{base}_beside"
        if name not in self.session.stacks:
            env = self.session.stack_env(base)
            self.session.adopt_env(replace(env, stack=replace(env.stack, name=name)))
        self.session.runner(name, self.session.options.claims_runner)
        return name

    def observe(self, article: Article, stack: str | None = None) -> Observations:
        key = run_inputs(article)
        if key not in self.runs:
            stack = stack or line_stack(self.session, article.install_packages)
            self.runs[key] = probe(self.session, stack, article)
        return self.runs[key]

    def trial(
        self, candidates: tuple[Candidate, ...], extra: Sequence[Edit] = (), stack: str | None = None
    ) -> Trial:
        try:
            article = self.edited(candidates, extra)
            obs = self.observe(article, stack)
        except (RepairError, ArticleError, StackError, ServerError, ForkServerError) as exc:
            return Trial(candidates, error=str(exc).splitlines()[0])
        return Trial(candidates, self.verdicts(obs, article), obs, article)

    def evaluate(self, sets: list[tuple[Candidate, ...]]) -> list[Trial]:
        """Each set of candidates followed for real; distinct runs in parallel."""
        articles = []
        for candidates in sets:
            try:
                articles.append(self.edited(candidates))
            except (RepairError, ArticleError):
                continue  # the trial says why
        self.prepare(articles)
        # one thread per distinct run; texts sharing a run wait for it (made once, below)
        fresh: dict[tuple[Any, ...], Article] = {}
        for article in articles:
            if run_inputs(article) not in self.runs:
                fresh.setdefault(run_inputs(article), article)
        if len(fresh) > 1:
            with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(fresh)))) as pool:
                done = pool.map(self._probe_or_error, fresh.values())
                for key, obs in zip(fresh, done, strict=True):
                    if obs is not None:
                        self.runs[key] = obs
        return [self.trial(candidates) for candidates in sets]

    def _probe_or_error(self, article: Article) -> Observations | None:
        try:
            stack = line_stack(self.session, article.install_packages)
            return probe(self.session, stack, article)
        except (StackError, ServerError, ForkServerError):
            return None  # made again by `trial`, which says why


def propose(trial: Trial) -> list[Candidate]:
    """The candidates a trial's failures and drifts suggest."""
    if trial.article is None or trial.observations is None:
        return []
    obs = trial.observations
    outputs = [ran.result.output for ran in obs.transcript]
    return candidates_for(trial.article, trial.verdicts, outputs, obs.versions)


def find_repair(prover: Prover, base: Trial) -> tuple[Trial, list[Trial]]:
    return search(base, propose, prover.evaluate)


def holds_everywhere(column: Trial, repaired: Trial) -> bool:
    """A repair that still does its job: nothing broken or not checked on the text with the
    repair, and every claim holding on the repaired article."""
    if column.error or repaired.error or not column.verdicts or not repaired.verdicts:
        return False
    return not (column.count(BROKEN) or column.count(NOT_CHECKED)) and all(
        v.verdict == HOLDS for v in repaired.verdicts.values()
    )


def describe(trial: Trial) -> list[dict[str, Any]]:
    """The repair in words: each candidate with its edits, for reports."""
    return [
        {"change": c.name, "because": c.because, "edits": [e.describe() for e in c.edits]}
        for c in trial.candidates
    ]
