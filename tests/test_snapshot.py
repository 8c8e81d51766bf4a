"""Snapshot files: readable YAML, unified diffs, update rules for per-stack variants, unused files."""

from pathlib import Path

from harness import snapshot
from harness.plugin import unused_snapshots

OBSERVED = {"scenario": "foo", "steps": [{"upgrade": "op.create_table('owners',\nsa.Column('id'))\n"}]}


def scenario_file(tmp_path: Path, ident: str = "foo") -> Path:
    path = tmp_path / "scenarios" / f"{ident}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"id: {ident}\ntitle: t\nsteps: []\n")
    return path


def test_multiline_strings_are_written_as_blocks():
    text = snapshot.dump(OBSERVED)
    assert "upgrade: |\n    op.create_table('owners',\n    sa.Column('id'))\n" in text


def test_missing_then_matching_then_differing(tmp_path):
    path = scenario_file(tmp_path)
    missing = snapshot.compare(OBSERVED, path, "foo", "current")
    assert not missing.exists and not missing.matches
    assert snapshot.update(OBSERVED, path, "foo", "current") == path.parent / "__snapshots__" / "foo.yaml"
    assert snapshot.compare(OBSERVED, path, "foo", "current").matches
    changed = {"scenario": "foo", "steps": [{"upgrade": "op.create_table('pets',\nsa.Column('id'))\n"}]}
    diff = snapshot.compare(changed, path, "foo", "current").diff
    assert "-    op.create_table('owners'," in diff and "+    op.create_table('pets'," in diff
    assert diff.startswith("--- foo.yaml (expected)\n+++ observed\n")


def test_update_is_idempotent(tmp_path):
    path = scenario_file(tmp_path)
    snapshot.update(OBSERVED, path, "foo", "current")
    assert snapshot.update(OBSERVED, path, "foo", "current") is None


def test_other_stacks_get_a_variant_only_where_they_differ(tmp_path):
    path = scenario_file(tmp_path)
    folder = path.parent / "__snapshots__"
    snapshot.update(OBSERVED, path, "foo", "current")
    assert snapshot.update(OBSERVED, path, "foo", "era2020") is None
    assert not (folder / "foo.era2020.yaml").exists()
    other = {"scenario": "foo", "steps": []}
    assert snapshot.update(other, path, "foo", "era2020") == folder / "foo.era2020.yaml"
    assert snapshot.compare(other, path, "foo", "era2020").matches
    assert snapshot.compare(OBSERVED, path, "foo", "current").matches
    # once the stack agrees with the common file again, its variant goes away
    assert snapshot.update(OBSERVED, path, "foo", "era2020") == folder / "foo.era2020.yaml"
    assert not (folder / "foo.era2020.yaml").exists()


def test_unused_snapshots_are_those_of_no_scenario_or_no_stack(tmp_path):
    path = scenario_file(tmp_path)
    folder = path.parent / "__snapshots__"
    folder.mkdir()
    for name in ("foo.yaml", "foo.era2020.yaml", "foo.gone.yaml", "removed.yaml"):
        (folder / name).write_text("{}\n")
    assert unused_snapshots([tmp_path], {"current", "era2020"}) == [
        folder / "foo.gone.yaml",
        folder / "removed.yaml",
    ]
