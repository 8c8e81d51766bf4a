"""The scenario drift page is generated from the snapshots; the committed page must match."""

from pathlib import Path

from harness import drift

ROOT = Path(__file__).resolve().parent.parent


def test_committed_drift_page_matches_the_snapshots():
    committed = (ROOT / "docs" / "drift-scenarios.md").read_text(encoding="utf-8")
    assert committed == drift.render(), "docs/drift-scenarios.md is stale: run `python -m harness.drift`"


def test_variant_cells_are_marked_and_linked():
    page = drift.render()
    header = next(line for line in page.splitlines() if line.startswith("| Scenario |"))
    assert "article" not in header.split("|")[2:]  # the article stack opts out of the library
    variants = sorted((ROOT / "scenarios").rglob("__snapshots__/*.*.yaml"))
    for variant in variants:
        assert f"(../{variant.relative_to(ROOT).as_posix()})" in page
    assert f"{len(variants)} cell(s) come from a per-stack variant." in page
