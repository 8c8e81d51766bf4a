"""What a snapshot keeps of the commands the scenario language added, beyond its transcript.

(Every command's stdout and stderr are in its transcript, `normalise.transcript`: heads, branches,
current, history, show, stamp, check and any ``--sql`` run are judged on them like the rest.)

* ``why`` / ``match``: what the scenario says about an expected failure.
* ``rows_truncated``: a `query` whose rows were capped (the judge warns about it).
* ``edit``: the file an edit changed, the change as a unified diff and, for a revision, the file after it.
"""

from __future__ import annotations

from typing import Any

from harness.commands_spec import QUERY_CHAR_LIMIT, QUERY_ROW_LIMIT
from harness.records import CommandRecord


def command_fields(record: CommandRecord) -> dict[str, Any]:
    """The extra snapshot fields of one command (empty for the original six commands' plain forms)."""
    out: dict[str, Any] = {}
    command = record.command
    if command.why:
        out["why"] = command.why
    if command.match:
        out["match"] = command.match
    if record.rows_total is not None and record.rows is not None:
        out["rows_truncated"] = truncation_note(len(record.rows), record.rows_total)
    if record.edit is not None:
        out["edit"] = dict(record.edit)
    return out


def truncation_note(kept: int, total: int) -> str:
    return (
        f"kept {kept} of {total} rows (limits: {QUERY_ROW_LIMIT} rows, {QUERY_CHAR_LIMIT} characters); "
        "select fewer rows, or aggregate them (count(*), sum, string_agg)"
    )
