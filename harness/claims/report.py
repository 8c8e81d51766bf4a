"""The claims report: a terminal table, and Markdown fit for a CI job summary.

Built from plain `ClaimResult` rows (which travel in pytest reports' user_properties, so the
report is the same with or without xdist). Rows are ordered by the catalogue and the stacks as
given, and hold no timings or paths: two runs give the same report.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

VERDICT_STYLE = {"holds": "green", "drifted": "yellow", "broken": "bold red", "not checked": "dim"}


@dataclass(frozen=True)
class ClaimResult:
    claim: str
    section: str
    paraphrase: str
    stack: str
    verdict: str
    observed: str
    article: str
    reason: str
    environment: str  # JSON: versions, python, server

    def as_properties(self) -> list[tuple[str, str]]:
        return [(f"claim_{k}", v) for k, v in self.__dict__.items()]

    @classmethod
    def from_properties(cls, props: list[tuple[str, object]]) -> ClaimResult | None:
        values = {k[len("claim_") :]: str(v) for k, v in props if k.startswith("claim_")}
        return cls(**values) if values else None


def environment_json(versions: dict[str, str], python: str, server: str) -> str:
    return json.dumps({"versions": dict(sorted(versions.items())), "python": python, "server": server})


def _ordered(results: list[ClaimResult]) -> tuple[list[str], list[str], dict[tuple[str, str], ClaimResult]]:
    claims = list(dict.fromkeys(r.claim for r in results))
    stacks = list(dict.fromkeys(r.stack for r in results))
    return claims, stacks, {(r.claim, r.stack): r for r in results}


def terminal_table(results: list[ClaimResult], width: int = 120) -> str:
    claims, stacks, cells = _ordered(results)
    table = Table(title="Claims of the article", show_lines=False)
    table.add_column("claim", no_wrap=True)
    for stack in stacks:
        table.add_column(stack, no_wrap=True)
    table.add_column("evidence (" + stacks[-1] + ")" if stacks else "evidence", overflow="fold")
    for claim in claims:
        row = [escape(claim)]
        for stack in stacks:
            cell = cells.get((claim, stack))
            row.append(f"[{VERDICT_STYLE[cell.verdict]}]{cell.verdict}[/]" if cell else "")
        last = cells.get((claim, stacks[-1]))
        row.append(escape(_short(last.observed, 90)) if last else "")
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=width, force_terminal=False, color_system=None).print(table)
    return buffer.getvalue()


def _short(text: str, length: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown(results: list[ClaimResult], article_name: str) -> str:
    claims, stacks, cells = _ordered(results)
    lines = [f"# Claims of `{article_name}`", ""]
    for stack in stacks:
        env = json.loads(next(r.environment for r in results if r.stack == stack))
        versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        lines.append(f"- **{stack}**: Python {env['python']}, PostgreSQL {env['server']}; {versions}")
    counts = {stack: {} for stack in stacks}
    for r in results:
        counts[r.stack][r.verdict] = counts[r.stack].get(r.verdict, 0) + 1
    lines.append("")
    for stack in stacks:
        summary = ", ".join(f"{n} {v}" for v, n in sorted(counts[stack].items()))
        lines.append(f"- {stack}: {summary}")
    lines += ["", "| claim | section | " + " | ".join(stacks) + " |", "|---|---|" + "---|" * len(stacks)]
    for claim in claims:
        first = next(cells[(claim, s)] for s in stacks if (claim, s) in cells)
        row = [f"`{claim}`: {_md_cell(first.paraphrase)}", _md_cell(first.section)]
        for stack in stacks:
            cell = cells.get((claim, stack))
            row.append(f"[{cell.verdict}](#{_anchor(claim, stack)})" if cell else "")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Evidence", ""]
    for claim in claims:
        for stack in stacks:
            cell = cells.get((claim, stack))
            if cell is None:
                continue
            lines += [f'<a id="{_anchor(claim, stack)}"></a>', f"### {claim} on {stack}: {cell.verdict}", ""]
            if cell.reason:
                lines += [f"Why: {cell.reason}", ""]
            lines += [
                "Article:",
                "",
                "```",
                cell.article.rstrip(),
                "```",
                "",
                "Observed:",
                "",
                "```",
                cell.observed.rstrip(),
                "```",
                "",
            ]
    return "\n".join(lines)


# -- the repair (the main job's second column) -------------------------------------------------


def repair_lines(summary: dict[str, Any]) -> list[str]:
    """The repair as edits of the article's text, what else was tried, and the repaired article's
    verification: plain lines, shared by the terminal and the Markdown."""
    lines = []
    if summary.get("error"):
        return [f"No repair could be searched: {summary['error']}"]
    if summary.get("source"):
        lines.append(f"How: {summary['source']}.")
    if summary["repair"]:
        lines.append(f"The repair ({summary['repair_size']} characters changed):")
        for change in summary["repair"]:
            lines.append(f"- {change['change']} (because: {_short(change['because'], 160)})")
            lines += [f"    {edit}" for edit in change["edits"]]
    else:
        lines.append("No edit of the article's text improves on it as written.")
    lines.append("Tried:")
    for trial in summary["tried"]:
        names = " + ".join(trial["changes"]) or "the article as written"
        outcome = trial["error"] or ", ".join(f"{n} {v}" for v, n in sorted(trial["counts"].items()))
        lines.append(f"- {names}: {outcome}")
    lines.append("The repaired article (the repair, and each drifted passage brought up to date):")
    for change in summary["rewrite"]:
        lines.append(f"- {change['change']}")
        lines += [f"    {edit}" for edit in change["edits"]]
    if summary["left_as_is"]:
        lines.append(f"- left as written (no rewriter): {', '.join(summary['left_as_is'])}")
    counts = ", ".join(f"{n} {v}" for v, n in sorted(summary["repaired_counts"].items()))
    verdict = "verifies" if summary["verifies"] else "DOES NOT verify"
    lines.append(f"It {verdict} on today's releases: {counts}.")
    lines.append(
        f"Written to {summary['text_path']}; diff {summary['diff_path']} "
        f"(+{summary['added']} -{summary['removed']} lines)."
    )
    return lines


def repair_terminal(summary: dict[str, Any]) -> str:
    return "\n".join(repair_lines(summary)) + "\n"


def repair_markdown(summary: dict[str, Any]) -> str:
    """The repair section appended to the claims report (the CI job summary)."""
    out = ["", "## The smallest proven repair", ""]
    for line in repair_lines(summary):
        if line.startswith("    "):  # an edit, nested under its change
            out.append("  - " + line.strip())
        else:
            out.append(line if line.startswith("-") else "\n" + line + "\n")
    if summary.get("diff"):
        out += ["", "<details><summary>Unified diff of the repaired article</summary>", "", "```diff"]
        out += [summary["diff"].rstrip(), "```", "", "</details>"]
    return "\n".join(out) + "\n"


def _anchor(claim: str, column: str) -> str:
    """A link target for one cell: a column's name may hold spaces ("with the repair"), which an
    id and a Markdown link cannot."""
    return f"{claim}-{column}".replace(" ", "-")
