"""The edit command: a file changed by hand between two `flask db` commands, as a reader does it.

Autogenerate's output says "please adjust!": a reader opens the revision file (or ``env.py``) and
changes it before ``flask db upgrade``. A scenario says how, in one of three ways:

* ``diff``: a unified diff (hunks, with or without ``---``/``+++`` headers), applied by
  `whatthepatch`; a hunk whose context does not match is an error naming the hunk;
* ``replace``: a list of ``{old, new}``; each ``old`` text must occur exactly once;
* ``upgrade`` / ``downgrade``: the new body of that function, written without indentation.

The target is the latest revision file the run created, a named one (``revision: <rev2>``), or
another file of the project (``file: migrations/env.py``). Pure text in, text out; `execute` finds
the file and records the result.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

import whatthepatch
from whatthepatch.exceptions import HunkApplyException

FUNCTIONS = ("upgrade", "downgrade")


class EditError(Exception):
    """An edit that cannot be applied; the message says which part and why."""


@dataclass(frozen=True)
class Edit:
    revision: str | None = None  # `<rev2>`, `<rev:message>`; None with no file: the latest revision
    file: str | None = None  # a path inside the project, instead of a revision
    diff: str | None = None
    replace: tuple[tuple[str, str], ...] = ()
    upgrade: str | None = None
    downgrade: str | None = None

    @property
    def how(self) -> str:
        if self.diff is not None:
            return "diff"
        if self.replace:
            return f"{len(self.replace)} replacement(s)"
        return " and ".join(f"new {f}()" for f in FUNCTIONS if getattr(self, f) is not None)

    @property
    def target(self) -> str:
        return self.file or self.revision or "the latest revision"

    @property
    def label(self) -> str:
        return f"edit {self.target}: {self.how}"


def _apply_diff(text: str, diff: str, resolver: Callable[[str], str]) -> str:
    patch_text = resolver(diff)
    if not patch_text.lstrip().startswith("---"):
        patch_text = "--- a\n+++ b\n" + patch_text
    patches = list(whatthepatch.parse_patch(patch_text))
    if len(patches) != 1 or not patches[0].changes:
        raise EditError("the diff holds no hunk (write `@@ -l,n +l,n @@` lines with their context)")
    try:
        lines = whatthepatch.apply_diff(patches[0], text.splitlines())
    except HunkApplyException as exc:
        hunk = getattr(exc, "hunk", None)
        header = _hunk_header(patch_text, hunk) if hunk else ""
        raise EditError(f"hunk #{hunk}{f' ({header})' if header else ''} does not apply: {exc}") from None
    return "\n".join(lines) + "\n"


def _hunk_header(patch_text: str, number: int) -> str:
    headers = [line for line in patch_text.splitlines() if line.startswith("@@")]
    return headers[number - 1] if 0 < number <= len(headers) else ""


def _apply_replacements(
    text: str, replace: tuple[tuple[str, str], ...], resolver: Callable[[str], str]
) -> str:
    for index, (old, new) in enumerate(replace, start=1):
        old, new = resolver(old), resolver(new)
        count = text.count(old)
        if count != 1:
            found = "does not occur" if count == 0 else f"occurs {count} times"
            raise EditError(
                f"replacement #{index}: the text {old!r} {found} in the file (it must occur once)"
            )
        text = text.replace(old, new)
    return text


def _replace_body(text: str, function: str, body: str) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise EditError(f"the file is not valid Python before the edit: {exc}") from None
    top = tree.body
    index = next(
        (i for i, n in enumerate(top) if isinstance(n, ast.FunctionDef) and n.name == function), None
    )
    if index is None:
        raise EditError(f"the file has no top-level `def {function}()`")
    lines = text.splitlines()
    start = top[index].lineno  # the body starts on the line after `def ...:`
    end = top[index + 1].lineno - 1 if index + 1 < len(top) else len(lines)
    # keep the blank lines (and comments) that lead to the next statement
    while end > start and not lines[end - 1].strip():
        end -= 1
    new = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ").splitlines()
    return "\n".join([*lines[:start], *new, *lines[end:]]) + "\n"


def apply_edit(edit: Edit, text: str, resolver: Callable[[str], str] = lambda s: s) -> str:
    """The file's text after the edit; EditError when it does not apply."""
    if edit.diff is not None:
        out = _apply_diff(text, edit.diff, resolver)
    elif edit.replace:
        out = _apply_replacements(text, edit.replace, resolver)
    else:
        out = text
        for function in FUNCTIONS:
            body = getattr(edit, function)
            if body is not None:
                out = _replace_body(out, function, resolver(body))
    if out == text:
        raise EditError("the edit changes nothing in the file")
    try:
        ast.parse(out)
    except SyntaxError as exc:
        raise EditError(
            f"the file is not valid Python after the edit: line {exc.lineno}: {exc.msg}"
        ) from None
    return out
