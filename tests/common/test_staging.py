"""A report's files replaced together: the earlier set stays whole when writing fails."""

from __future__ import annotations

import os
import time

import pytest

from rulewatch.common.staging import STAGE_PREFIX, STALE_SECONDS, moved, written_together


def _files(folder) -> dict[str, str]:  # noqa: ANN001
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_the_files_replace_the_earlier_ones_together(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "a.csv").write_text("old a")
    (out / "keep.txt").write_text("not ours")
    with written_together(out) as stage:
        assert stage.parent == out and stage.name.startswith(STAGE_PREFIX)
        (stage / "a.csv").write_text("new a")
        written = stage / "b.html"
        written.write_text("new b")
    assert _files(out) == {"a.csv": "new a", "b.html": "new b", "keep.txt": "not ours"}
    assert moved(written, out) == out / "b.html"


def test_an_error_while_writing_changes_nothing_and_leaves_nothing(tmp_path):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "a.csv").write_text("old a")
    with pytest.raises(OSError, match="disk full"), written_together(out) as stage:
        (stage / "a.csv").write_text("half")
        raise OSError(28, "disk full")
    assert _files(out) == {"a.csv": "old a"}


def test_a_folder_where_a_file_goes_fails_before_any_file_moves(tmp_path):
    out = tmp_path / "reports"
    (out / "b.xlsx").mkdir(parents=True)
    (out / "a.csv").write_text("old a")
    with pytest.raises(IsADirectoryError) as err, written_together(out) as stage:
        (stage / "a.csv").write_text("new a")
        (stage / "b.xlsx").write_text("new b")
    assert err.value.filename == str(out / "b.xlsx")
    assert (out / "a.csv").read_text() == "old a" and (out / "b.xlsx").is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.xlsx"]


def test_a_killed_runs_staging_folder_is_removed_a_young_one_kept(tmp_path):
    out = tmp_path / "reports"
    old, young = out / f"{STAGE_PREFIX}old", out / f"{STAGE_PREFIX}young"
    for folder in (old, young):
        folder.mkdir(parents=True)
        (folder / "x.html").write_text("half")
    stale = time.time() - STALE_SECONDS - 60
    os.utime(old, (stale, stale))
    with written_together(out):
        pass
    assert sorted(p.name for p in out.iterdir()) == [young.name]
