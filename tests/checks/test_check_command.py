"""The commands from outside: `rulewatch sync` runs the checks, `rulewatch check` lists slips."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import pytest
from checks_support import config_copy
from cli_support import clean_env, run_rulewatch
from sqlalchemy import create_engine, select

from rulewatch.checks.display import SUMMARY_ARTIFACT_KEY, TABLE_ARTIFACT_KEY
from rulewatch.demo.data import MISSED_FILING_DOC_ID
from rulewatch.demo.servers import start_demo_sources
from rulewatch.report.tables import report_periods
from rulewatch.warehouse.schema import check_run, sync_run


@pytest.fixture(scope="module")
def synced(tmp_path_factory) -> tuple[Path, dict[str, str], subprocess.CompletedProcess]:  # noqa: ANN001
    """`rulewatch sync` (the real Prefect flow) on the demo sources, into SQLite."""
    folder = tmp_path_factory.mktemp("commands")
    env = _env(folder)
    return folder, env, _sync(env)


def _env(folder: Path) -> dict[str, str]:
    """A SQLite warehouse, data folder and Prefect home of their own in ``folder``."""
    return clean_env(
        RULEWATCH_DATA_DIR=str(folder / "data"),
        RULEWATCH_WAREHOUSE_URL=f"sqlite:///{folder / 'wh.db'}",
        RULEWATCH_PII_KEY="check-test-key",
        PREFECT_HOME=str(folder / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )


def _sync(env: dict[str, str], as_of: str = "2024-05-20") -> subprocess.CompletedProcess:
    """`rulewatch sync` (the real Prefect flow) on the demo sources."""
    with start_demo_sources() as demo:
        return run_rulewatch({**env, **demo.env()}, "sync", "--as-of", as_of)


def test_sync_runs_the_checks_and_publishes_artifacts(synced):  # noqa: ANN001
    folder, env, res = synced
    assert res.returncode == 0, res.stderr
    assert "data quality:" in res.stdout and "every expectation met" in res.stdout
    assert "slipped: docreview.filing_rate 2024" in res.stdout
    assert MISSED_FILING_DOC_ID in res.stdout
    assert (folder / "data" / "data_docs" / "index.html").exists()
    engine = create_engine(env["RULEWATCH_WAREHOUSE_URL"])
    with engine.connect() as conn:
        jobs = set(conn.execute(select(sync_run.c.job_id)).scalars())
        runs = conn.execute(select(check_run.c.kind, check_run.c.job_id, check_run.c.period)).all()
    engine.dispose()
    assert len(jobs) == 1
    assert sorted({(kind, job in jobs) for kind, job, _ in runs}) == [
        ("data_quality", True),
        ("targets", True),
    ]
    # the year by Great Expectations, every other period of the report tables in bulk
    checked = sorted(period for kind, _, period in runs if kind == "targets")
    assert checked == sorted(p.label for p in report_periods(date(2024, 5, 20)))
    with sqlite3.connect(folder / "prefect" / "prefect.db") as db:
        keys = {k for (k,) in db.execute("SELECT key FROM artifact")}
    assert {TABLE_ARTIFACT_KEY, SUMMARY_ARTIFACT_KEY} <= keys


def test_fail_on_slip_lists_the_missed_filing_and_exits_3(synced):  # noqa: ANN001
    folder, env, _ = synced
    res = run_rulewatch(env, "check", "--period", "2024", "--as-of", "2024-05-20", "--fail-on-slip")
    assert res.returncode == 3, res.stderr
    assert "slipped: docreview.filing_rate 2024" in res.stdout
    assert f"{MISSED_FILING_DOC_ID}: not filed; deadline" in res.stdout
    page = res.stdout.rsplit("checks page: ", 1)[1].strip()
    assert Path(page) == folder / "data" / "data_docs" / "checks.html" and Path(page).exists()
    assert MISSED_FILING_DOC_ID in Path(page).read_text(encoding="utf-8")
    assert "Traceback" not in res.stderr

    quiet = run_rulewatch(env, "check", "--as-of", "2024-05-20")  # the as-of year; exit 0
    assert quiet.returncode == 0, quiet.stderr
    assert MISSED_FILING_DOC_ID in quiet.stdout


def test_bad_usage_and_config_exit_2_with_one_line(synced, tmp_path):  # noqa: ANN001
    _, env, _ = synced
    res = run_rulewatch(env, "check", "--period", "2024-13")
    assert res.returncode == 2 and "period '2024-13'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    config = config_copy(tmp_path, **{"listed_offenders: 20": "listed_offenders: 0"})
    res = run_rulewatch(
        {**env, "RULEWATCH_CONFIG_DIR": str(config)}, "check", "--as-of", "2024-05-20"
    )
    assert res.returncode == 2
    assert "checks.yaml: listed_offenders" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_file_in_the_way_of_the_data_docs_fails_naming_it(synced, tmp_path):  # noqa: ANN001
    _, env, _ = synced
    data = tmp_path / "data"
    data.mkdir()
    (data / "data_docs").write_text("not a folder", encoding="utf-8")
    env = {**env, "RULEWATCH_DATA_DIR": str(data)}
    res = run_rulewatch(env, "check", "--as-of", "2024-05-20")
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"rulewatch: failed: cannot use {data / 'data_docs'}: File exists (a file stands "
        "where rulewatch keeps a folder: move it away, the next run makes the folder)"
    ]
    (data / "data_docs").unlink()
    again = run_rulewatch(env, "check", "--as-of", "2024-05-20")
    assert again.returncode == 0, again.stderr
    assert (data / "data_docs" / "checks.html").exists()


def test_a_night_that_fails_after_its_checks_keeps_their_gx_record(tmp_path):  # noqa: ANN001
    data = tmp_path / "data"
    page = data / "data_docs" / "checks.html"
    (page / "in-the-way").mkdir(parents=True)  # a folder where the checks page goes
    res = _sync(_env(tmp_path))
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"rulewatch: failed: cannot use {page}: Is a directory "
        "(a folder stands where rulewatch writes a file: move it away)"
    )
    # the rows were loaded and checked: the data-quality run's record is in GX all the same
    recorded = {p.relative_to(data / "gx" / "validations").parts[0] for p in data.rglob("*.json")}
    assert "quality" in recorded
    assert not list(page.parent.glob(".checks-*.tmp"))  # the half-written page is gone


def test_a_step_whose_database_fails_ends_in_one_line_naming_it(synced, tmp_path):  # noqa: ANN001
    folder, _, _ = synced
    copy = _refusing_copy(folder / "wh.db", tmp_path / "wh.db", "report_metric")
    res = _sync(_env(tmp_path), as_of="2024-05-21")  # on the copy
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr and "unexpected" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"rulewatch: failed: warehouse {copy}: cannot refresh the report tables: database or "
        "disk is full (free space on the warehouse's disk, then run again: what was "
        "committed stays)"
    )


def test_a_night_gx_cannot_record_ends_in_its_one_line(tmp_path):  # noqa: ANN001
    data = tmp_path / "data"
    data.mkdir()
    (data / "gx").write_text("a file where GX's folder goes", encoding="utf-8")
    res = _sync(_env(tmp_path))
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("rulewatch: failed: Great Expectations could not record the checks: ")


def test_a_command_whose_database_fails_ends_in_one_line_naming_it(synced, tmp_path):  # noqa: ANN001
    folder, env, _ = synced
    copy = _refusing_copy(folder / "wh.db", tmp_path / "wh.db", "check_run")
    env = {**env, "RULEWATCH_WAREHOUSE_URL": f"sqlite:///{copy}"}
    res = run_rulewatch(env, "check", "--as-of", "2024-05-22")
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"rulewatch: failed: warehouse {copy}: cannot finish rulewatch check: database or "
        "disk is full (free space on the warehouse's disk, then run again: what was "
        "committed stays)"
    ]


def _refusing_copy(warehouse: Path, copy: Path, table: str) -> Path:
    """A copy of ``warehouse`` that refuses rows written to ``table`` as a full disk does."""
    with sqlite3.connect(warehouse) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    return copy
