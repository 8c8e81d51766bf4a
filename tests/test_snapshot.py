"""Snapshot files: readable YAML, unified diffs, update rules for per-stack variants, unused files."""

from pathlib import Path

import pytest

from harness import store as snapshot
from harness.store import unused_snapshots

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


def test_a_snapshot_that_does_not_parse_names_its_file_line_and_what_to_do(tmp_path):
    path = scenario_file(tmp_path)
    folder = path.parent / "__snapshots__"
    folder.mkdir()
    (folder / "foo.yaml").write_text("scenario: foo\nsteps: [\n")
    with pytest.raises(snapshot.SnapshotError) as exc:
        snapshot.compare(OBSERVED, path, "foo", "current")
    first = str(exc.value).splitlines()[0]
    assert first.startswith(f"{folder / 'foo.yaml'}:3: the snapshot is not valid YAML")
    assert "What to do: restore it from git" in str(exc.value)


def test_claim_records_are_entries_of_one_file_per_stack(tmp_path):
    catalogue = tmp_path / "claims" / "catalogue.yaml"
    path = snapshot.records_file(catalogue, "current")
    assert not snapshot.compare_record("holds", path, "a").exists
    assert snapshot.write_record("holds", path, "b") and snapshot.write_record("drifted", path, "a")
    assert not snapshot.write_record("drifted", path, "a")  # unchanged: not rewritten
    assert path.read_text() == "a: drifted\nb: holds\n"
    assert snapshot.compare_record("drifted", path, "a").matches
    assert "+a: holds" in snapshot.compare_record("holds", path, "a").diff
    (path.parent / "gone.yaml").write_text("a: holds\n")
    transcript = snapshot.transcript_file(catalogue, "gone")
    assert transcript == tmp_path / "claims" / "transcripts" / "gone.yaml"
    snapshot.write_file([{"command": "flask db upgrade"}], transcript)
    unused = snapshot.unused_records(catalogue, {"a"}, {"current"})
    assert unused == [(transcript, None), (path, "b"), (path.parent / "gone.yaml", None)]
    for where, key in unused:
        snapshot.delete_record(where, key)
    assert sorted(p.name for p in path.parent.iterdir()) == ["current.yaml"]
    assert not transcript.exists()
    assert path.read_text() == "a: drifted\n"


def test_a_record_keeps_its_evidence_and_a_changed_line_shows_in_the_diff(tmp_path):
    path = tmp_path / "claims" / "verdicts" / "current.yaml"
    record = {
        "verdict": "drifted",
        "observed": "1 line",
        "evidence": {"unaccounted": ["`flask db init` stdout: x"]},
    }
    assert snapshot.write_record(record, path, "no_warnings")
    assert snapshot.compare_record(record, path, "no_warnings").matches
    other = {**record, "evidence": {"unaccounted": ["`flask db init` stdout: y"]}}
    diff = snapshot.compare_record(other, path, "no_warnings").diff
    assert "-    - '`flask db init` stdout: x'" in diff and "+    - '`flask db init` stdout: y'" in diff


def test_a_whole_file_snapshot_is_written_once_and_compared_line_by_line(tmp_path):
    path = tmp_path / "claims" / "transcripts" / "current.yaml"
    entries = [{"command": "flask db upgrade", "exit": 0, "stderr": "INFO  one\n"}]
    assert not snapshot.compare_file(entries, path).exists
    assert snapshot.write_file(entries, path) and not snapshot.write_file(entries, path)
    assert snapshot.compare_file(entries, path).matches
    changed = [{**entries[0], "stderr": "INFO  one\nan extra line\n"}]
    assert "+    an extra line\n" in snapshot.compare_file(changed, path).diff
