"""The recorded repair (``claims/repair.yaml``): the proven repair kept as a reviewed snapshot.

Searching the repair means following the article several times on several stacks. The main job
instead re-proves the recorded repair: it applies the recorded edits to the article's text and
follows the edited text once, for real, beside the article as written. It searches again only
when the record does not apply (the article's text changed: its sha256 differs) or no longer
holds (a claim on the repaired text is not what the record earned).

The record never holds the article's sentences (they are not ours to copy): each edit is kept as
the smallest splice of the text (where it begins, how many characters it removes, what it
inserts), with the article's sha256 to say which text it applies to. What it inserts is our own
words or what the commands print. With it go the changes in our words and the verdict counts
each text earned, so a review of the file (and its diff) is a review of the repair.

Pure: plain values in and out; the plugin reads and writes the file through `harness.store`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.claims.repair import Candidate, Edit


class RecordError(Exception):
    """A record that is not the shape `to_data` writes; says what is wrong and what to do."""


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Splice:
    """Remove `delete` characters at (1-based) `line`, 0-based `column`, and insert `insert`."""

    line: int
    column: int
    delete: int
    insert: str


def splice_of(text: str, edit: Edit) -> Splice:
    """`edit` (old -> new at its line of `text`) as its smallest splice: the common start and end
    of old and new are left out, so the splice holds none of the text it keeps."""
    lines = text.splitlines(keepends=True)
    start = sum(len(ln) for ln in lines[: edit.line - 1])
    at = text.find(edit.old, start)
    head = 0
    while head < min(len(edit.old), len(edit.new)) and edit.old[head] == edit.new[head]:
        head += 1
    tail = 0
    while (
        tail < min(len(edit.old), len(edit.new)) - head
        and edit.old[len(edit.old) - 1 - tail] == edit.new[len(edit.new) - 1 - tail]
    ):
        tail += 1
    pos = at + head
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1)
    return Splice(line, column, len(edit.old) - head - tail, edit.new[head : len(edit.new) - tail])


def edit_of(text: str, splice: Splice) -> Edit:
    """The `Edit` a splice makes of `text`: the whole lines it touches, old and new (so that
    `apply_edits` finds it at its line whatever it inserts)."""
    lines = text.splitlines(keepends=True)
    if not 1 <= splice.line <= len(lines):
        raise RecordError(f"an edit at line {splice.line}: the text has {len(lines)} lines")
    start = sum(len(ln) for ln in lines[: splice.line - 1])
    pos = start + splice.column
    end = pos + splice.delete
    if splice.column > len(lines[splice.line - 1]) or end > len(text):
        raise RecordError(f"an edit at line {splice.line}, column {splice.column}: beyond the text")
    stop = text.find("\n", end)
    stop = len(text) if stop < 0 else stop + 1
    old = text[start:stop]
    return Edit(splice.line, old, text[start:pos] + splice.insert + text[end:stop])


def _changes_data(text: str, candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    out = []
    for candidate in candidates:
        because = candidate.because.strip().splitlines()[0] if candidate.because.strip() else ""
        if len(because) > 160:
            because = because[:160].rsplit(" ", 1)[0] + " …"
        out.append(
            {
                "change": candidate.name,
                "because": because,
                "edits": [vars(splice_of(text, e)) for e in candidate.edits],
            }
        )
    return out


def to_data(
    text: str,
    name: str,
    repair: Sequence[Candidate],
    rewrite: Sequence[Candidate],
    earned: dict[str, dict[str, int]],
    diff: str,
) -> dict[str, Any]:
    """The record of a proven repair of `text` (the article as written, named `name`)."""
    return {
        "article": {"name": name, "sha256": text_sha256(text)},
        "repair": _changes_data(text, repair),
        "rewrite": _changes_data(text, rewrite),
        "earned": {column: dict(sorted(counts.items())) for column, counts in earned.items()},
        "diff": diff,
    }


@dataclass(frozen=True)
class Recorded:
    """A record read back against a text: its repair and rewrite as candidates of that text."""

    repair: tuple[Candidate, ...]
    rewrite: tuple[Candidate, ...]
    earned: dict[str, dict[str, int]]


def applies_to(data: Any, text: str) -> bool:
    """Whether the record was made for exactly this text."""
    article = data.get("article") if isinstance(data, dict) else None
    return isinstance(article, dict) and article.get("sha256") == text_sha256(text)


def from_data(data: Any, text: str) -> Recorded:
    """The record's candidates, made edits of `text` again (RecordError when it is malformed)."""
    what = "run with --snapshot-update to record the repair afresh, then review the file"
    if not isinstance(data, dict) or not {"repair", "rewrite", "earned"} <= set(data):
        raise RecordError(f"the record needs repair, rewrite and earned; {what}")

    def changes(key: str) -> tuple[Candidate, ...]:
        out = []
        for change in data[key] or []:
            try:
                splices = [Splice(**edit) for edit in change["edits"]]
                out.append(
                    Candidate(
                        str(change["change"]),
                        str(change.get("because", "")),
                        tuple(edit_of(text, s) for s in splices),
                    )
                )
            except (KeyError, TypeError) as exc:
                raise RecordError(f"{key}: an entry is not a change with edits ({exc}); {what}") from None
        return tuple(out)

    return Recorded(changes("repair"), changes("rewrite"), dict(data["earned"] or {}))
