"""Click's ``--help`` text -> its commands and options; one parser for the article's quoted
listing and for what ``flask db --help`` prints, so the two are compared like with like."""

from __future__ import annotations

import re

_COMMAND = re.compile(r"(?m)^\s{2}(\S+)\s{2,}(.*)$")
# "  -d, --directory TEXT  ..." or "  --help  ...": the flags, without a metavar
_OPTION = re.compile(r"(?m)^\s{2}(-[-\w, ]+?)(?:\s{2,}|\s+[A-Z]+\s)")


def help_commands(text: str) -> dict[str, str]:
    """Command -> description, from the part after ``Commands:``."""
    part = text.split("Commands:", 1)[1] if "Commands:" in text else ""
    return {m.group(1): m.group(2).strip() for m in _COMMAND.finditer(part)}


def help_options(text: str) -> list[str]:
    """The option flags listed between ``Options:`` and ``Commands:``."""
    part = text.split("Options:", 1)[1].split("Commands:", 1)[0] if "Options:" in text else ""
    return _OPTION.findall(part)
