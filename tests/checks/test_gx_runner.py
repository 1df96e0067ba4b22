"""The GX record: outcomes decided as GX decides them, stored in GX's shape, and pruning."""

from __future__ import annotations

import json
import os
import time
from datetime import date

from rulewatch.checks.gx_runner import (
    Expect,
    Validation,
    map_outcome,
    prune,
    record_validations,
    result_of,
    rows_outcome,
)

IN_SET = Expect(
    "s.status_known", "ExpectColumnValuesToBeInSet", {"column": "status", "value_set": ["a"]}
)


def test_prune_removes_old_results_and_empty_folders(tmp_path):  # noqa: ANN001
    old = tmp_path / "targets" / "run-1" / "20240101T000000Z" / "old.json"
    new = tmp_path / "targets" / "run-2" / "new.json"
    marker = tmp_path / ".ge_store_backend_id"
    hidden = tmp_path / "quality" / "run-1" / ".keep"
    for path in (old, new, marker, hidden):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    (tmp_path / "quality" / "empty").mkdir()
    long_ago = time.time() - 100 * 86400
    for path in (old, marker, hidden):
        os.utime(path, (long_ago, long_ago))
    assert prune(tmp_path, time.time() - 90 * 86400) == 1
    assert not (tmp_path / "targets" / "run-1").exists() and new.exists() and marker.exists()
    assert hidden.exists() and not (tmp_path / "quality" / "empty").exists()
    assert prune(tmp_path / "missing", time.time()) == 0


def test_a_map_outcome_ignores_nulls_and_honours_mostly():
    failed = map_outcome(IN_SET, "v", element_count=10, unexpected_count=1, missing_count=2)
    assert not failed.success and failed.expectation_type == "expect_column_values_to_be_in_set"
    assert result_of(failed)["unexpected_percent"] == 12.5  # 1 of the 8 values checked
    assert result_of(failed)["unexpected_percent_total"] == 10.0
    mostly = Expect(
        "m", "ExpectColumnValuesToBeInSet", {"column": "p", "value_set": [True], "mostly": 0.75}
    )
    assert map_outcome(mostly, "v", element_count=4, unexpected_count=1, missing_count=0).success
    assert not map_outcome(
        mostly, "v", element_count=4, unexpected_count=2, missing_count=0
    ).success
    empty = map_outcome(IN_SET, "v", element_count=3, unexpected_count=0, missing_count=3)
    assert empty.success and result_of(empty)["unexpected_percent"] is None


def test_partial_values_are_counted_as_gx_counts_them():
    o = map_outcome(
        IN_SET,
        "v",
        element_count=5,
        unexpected_count=3,
        missing_count=0,
        partial_unexpected=("x", "y", "x"),
    )
    assert result_of(o)["partial_unexpected_counts"] == [
        {"value": "x", "count": 2},
        {"value": "y", "count": 1},
    ]


def test_results_and_data_docs_are_gx_records_with_values_escaped(tmp_path):  # noqa: ANN001
    rows = Expect(
        "s.rows", "UnexpectedRowsExpectation", {"unexpected_rows_query": "SELECT k FROM {batch}"}
    )
    bad = map_outcome(
        IN_SET,
        "quality.s",
        element_count=2,
        unexpected_count=1,
        missing_count=0,
        partial_unexpected=("<i>rw-evil</i>",),
    )
    listed = rows_outcome(rows, "quality.s", count=250, rows=[{"k": f"K{i}"} for i in range(250)])
    validation = Validation("quality.s", "SELECT 1 WHERE 1 < 2", (IN_SET, rows), (bad, listed))
    run = record_validations(
        [validation],
        checkpoint="quality",
        run_name="run-1",
        data_docs_dir=tmp_path / "docs",
        validations_dir=tmp_path / "gx",
    )
    assert run.data_docs is not None and run.data_docs.exists()
    (stored,) = (tmp_path / "gx").rglob("*.json")
    record = json.loads(stored.read_text())
    assert record["suite_name"] == "quality.s" and record["success"] is False
    assert record["statistics"]["unsuccessful_expectations"] == 2
    first, second = record["results"]
    assert first["expectation_config"]["type"] == "expect_column_values_to_be_in_set"
    assert first["expectation_config"]["meta"] == {"rulewatch_check": "s.status_known"}
    assert first["result"]["partial_unexpected_list"] == ["&lt;i&gt;rw-evil&lt;/i&gt;"]
    assert second["result"]["observed_value"] == 250
    assert len(second["result"]["details"]["unexpected_rows"]) == 200  # GX's own cap
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert pages and "<i>rw-evil" not in pages[0].read_text()
    assert "rw-evil" in pages[0].read_text()


def test_dates_in_unexpected_values_are_stored(tmp_path):  # noqa: ANN001
    pair = Expect(
        "s.ordered",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {"column_A": "b", "column_B": "a", "or_equal": True},
    )
    o = map_outcome(
        pair,
        "quality.d",
        element_count=1,
        unexpected_count=1,
        missing_count=0,
        partial_unexpected=([date(2024, 1, 1), date(2024, 2, 1)],),
    )
    record_validations(
        [Validation("quality.d", "SELECT 1", (pair,), (o,))],
        checkpoint="quality",
        run_name="run-1",
        data_docs_dir=tmp_path / "docs",
        validations_dir=tmp_path / "gx",
    )
    (stored,) = (tmp_path / "gx").rglob("*.json")
    result = json.loads(stored.read_text())["results"][0]["result"]
    assert result["partial_unexpected_list"] == [["2024-01-01", "2024-02-01"]]


def test_the_recorder_process_writes_the_same_record(tmp_path):  # noqa: ANN001
    from rulewatch.checks.gx_runner import Recorder

    recorder = Recorder()
    try:
        _hand_one_run(recorder, tmp_path, "run-9")
        (done,) = recorder.finish()
    finally:
        recorder.close()
    assert done.data_docs == tmp_path / "docs" / "index.html" and done.data_docs.exists()
    (stored,) = (tmp_path / "gx").rglob("*.json")
    assert json.loads(stored.read_text())["meta"]["run_id"]["run_name"] == "run-9"


def test_a_record_that_fails_says_why_in_one_line(tmp_path):  # noqa: ANN001
    import pytest

    from rulewatch.checks.gx_runner import Recorder, RecordError

    (tmp_path / "docs").write_text("a file where the Data Docs folder goes")
    recorder = Recorder()
    try:
        _hand_one_run(recorder, tmp_path, "run-9")
        with pytest.raises(RecordError, match=r"could not record the checks: FileExistsError") as e:
            recorder.finish()
    finally:
        recorder.close()
    assert "\n" not in str(e.value)


def test_a_recorder_given_nothing_does_not_wait_for_the_import():
    from rulewatch.checks.gx_runner import Recorder

    recorder = Recorder()
    assert recorder.finish() == [] and recorder._process.poll() is not None


def test_a_recorder_started_ahead_is_the_next_jobs_then_a_new_one():
    from rulewatch.checks.gx_runner import Recorder, recorder_ahead

    with recorder_ahead():
        taken = Recorder.for_job()
        try:
            again = Recorder.for_job()
            again.close()
            assert again is not taken  # handed over once
        finally:
            taken.close()
    assert taken._process.poll() is not None


def test_a_recorder_started_ahead_that_no_job_took_is_stopped():
    from rulewatch.checks import gx_runner

    with gx_runner.recorder_ahead():
        (waiting,) = gx_runner._ahead
        assert waiting._process.poll() is None
    assert waiting._process.poll() is not None and gx_runner._ahead == []


def test_a_lazy_recorder_given_nothing_never_starts_gx():
    from rulewatch.checks.gx_runner import Recorder

    recorder = Recorder.for_job(start=False)
    assert not recorder.started
    assert recorder.finish() == [] and not recorder.started
    recorder.close()  # nothing to stop


def test_a_lazy_recorder_starts_gx_with_its_first_record(tmp_path):  # noqa: ANN001
    from rulewatch.checks.gx_runner import Recorder

    o = map_outcome(IN_SET, "targets.p", element_count=1, unexpected_count=0, missing_count=0)
    recorder = Recorder(start=False)
    try:
        recorder.record([], checkpoint="targets")  # an empty run records nothing
        assert not recorder.started
        recorder.record(
            [Validation("targets.p", "SELECT 1", (IN_SET,), (o,))],
            checkpoint="targets",
            run_name="run-3",
            data_docs_dir=tmp_path / "docs",
            validations_dir=tmp_path / "gx",
        )
        assert recorder.started
        (done,) = recorder.finish()
    finally:
        recorder.close()
    assert done.data_docs == tmp_path / "docs" / "index.html" and done.data_docs.exists()


def _run(name: str, run_name: str, tmp_path):  # noqa: ANN001, ANN202
    o = map_outcome(IN_SET, name, element_count=1, unexpected_count=0, missing_count=0)
    return [Validation(name, "SELECT 1", (IN_SET,), (o,))], {
        "checkpoint": name.partition(".")[0],
        "run_name": run_name,
        "data_docs_dir": tmp_path / "docs",
        "validations_dir": tmp_path / "gx",
        "keep_days": 90,
    }


def test_runs_recorded_together_share_one_data_docs_build(tmp_path):  # noqa: ANN001
    from rulewatch.checks.gx_runner import _build_docs, _store

    runs = (_run("quality.p", "run-1", tmp_path), _run("targets.p", "run-2", tmp_path))
    first, second = (_store(validations, **options) for validations, options in runs)
    assert not (tmp_path / "docs" / "index.html").exists()  # stored, not built yet
    _build_docs([first, second])
    index = tmp_path / "docs" / "index.html"
    assert first.outcome.data_docs == second.outcome.data_docs == index
    assert first.outcome.docs_seconds == 0 < second.outcome.docs_seconds  # one build, on the last
    pages = {p.name for p in (tmp_path / "docs" / "validations").rglob("*.html")}
    assert pages == {"warehouse-quality.p.html", "warehouse-targets.p.html"}
    assert "run-1" in index.read_text() and "run-2" in index.read_text()


def test_the_recorder_process_records_runs_sent_together(tmp_path):  # noqa: ANN001
    from rulewatch.checks.gx_runner import Recorder

    recorder = Recorder()
    try:
        for name, run_name in (("quality.p", "run-1"), ("targets.p", "run-2")):
            validations, options = _run(name, run_name, tmp_path)
            recorder.record(validations, **options)
        first, second = recorder.finish()
    finally:
        recorder.close()
    assert first.data_docs == second.data_docs == tmp_path / "docs" / "index.html"
    names = sorted(
        json.loads(p.read_text())["suite_name"] for p in (tmp_path / "gx").rglob("*.json")
    )
    assert names == ["quality.p", "targets.p"]
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "run-1" in index and "run-2" in index
    assert len(list((tmp_path / "docs" / "validations").rglob("*.html"))) == 2


def test_the_recorder_sees_a_run_sent_already_without_waiting_for_one():
    from rulewatch.checks.gx_runner import _waiting

    read, write = os.pipe()
    with os.fdopen(read, "rb") as runs, os.fdopen(write, "wb", buffering=0) as sender:
        assert not _waiting(runs)  # nothing sent: no wait
        sender.write(b"run")
        assert _waiting(runs) and runs.read(3) == b"run"  # seen, not consumed
        sender.close()
        assert not _waiting(runs)  # the end


def test_a_failed_job_lets_gx_record_what_it_was_handed(tmp_path):  # noqa: ANN001
    from rulewatch.checks.gx_runner import Recorder

    recorder = Recorder()
    _hand_one_run(recorder, tmp_path, "run-5")
    assert recorder.settle(timeout=120) is True
    assert recorder._process.poll() is not None
    (stored,) = (tmp_path / "gx").rglob("*.json")
    assert json.loads(stored.read_text())["meta"]["run_id"]["run_name"] == "run-5"
    assert recorder.settle() is True  # once settled, again at once


def test_settling_stops_gx_at_its_deadline(tmp_path, caplog):  # noqa: ANN001
    from rulewatch.checks.gx_runner import Recorder

    recorder = Recorder()
    _hand_one_run(recorder, tmp_path, "run-6")
    assert recorder.settle(timeout=0) is False  # GX's import alone takes seconds
    assert recorder._process.poll() is not None
    assert "did not record the failed job's checks in 0 s" in caplog.text


def _hand_one_run(recorder, tmp_path, run_name: str) -> None:  # noqa: ANN001
    """Hand ``recorder`` one data-quality run of one met expectation."""
    o = map_outcome(IN_SET, "quality.p", element_count=1, unexpected_count=0, missing_count=0)
    recorder.record(
        [Validation("quality.p", "SELECT 1", (IN_SET,), (o,))],
        checkpoint="quality",
        run_name=run_name,
        data_docs_dir=tmp_path / "docs",
        validations_dir=tmp_path / "gx",
    )
