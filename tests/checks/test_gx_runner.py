"""The GX runner's own helpers: history pruning and SQL that survives `sqlalchemy.text`."""

from __future__ import annotations

import os
import time

from rulewatch.checks.gx_runner import prune, sql_for_gx


def test_prune_removes_old_results_and_empty_folders(tmp_path):  # noqa: ANN001
    old = tmp_path / "targets" / "run-1" / "old.json"
    new = tmp_path / "targets" / "run-2" / "new.json"
    marker = tmp_path / ".ge_store_backend_id"
    for path in (old, new, marker):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    long_ago = time.time() - 100 * 86400
    os.utime(old, (long_ago, long_ago))
    os.utime(marker, (long_ago, long_ago))
    assert prune(tmp_path, time.time() - 90 * 86400) == 1
    assert not old.parent.exists() and new.exists() and marker.exists()


def test_colons_in_literals_are_kept():
    from sqlalchemy import text

    sql = sql_for_gx("SELECT 'a:b' AS reason")
    assert str(text(sql).compile()) == "SELECT 'a:b' AS reason"
