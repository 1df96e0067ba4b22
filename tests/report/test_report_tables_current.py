"""A quiet night keeps the report tables: only when they hold the date and nothing was written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from report_support import demo_warehouse, warehouse_url
from sqlalchemy import Engine, insert, select, update

from rulewatch.config.settings import Settings
from rulewatch.demo.data import DEMO_TODAY
from rulewatch.report.tables import report_tables_current
from rulewatch.warehouse.schema import check_run, now_utc, permit_application, sync_run

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
QUIET_JOB = "quiet-night"


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory) -> Iterator[tuple[Engine, Settings]]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp(f"report-current-{request.param}")
    with warehouse_url(request.param, folder) as url, demo_warehouse(url, folder) as loaded:
        yield loaded


def _sync_run(job_id: str, run_id: str) -> dict:
    return {
        "sync_run_id": run_id,
        "job_id": job_id,
        "source": "permits",
        "is_full_refresh": False,
        "started_at": now_utc() + timedelta(seconds=1),
        "status": "succeeded",
    }


def test_tables_refreshed_at_the_date_with_nothing_written_since_are_current(loaded):
    engine, settings = loaded
    with engine.connect() as conn:
        assert report_tables_current(conn, settings, DEMO_TODAY, QUIET_JOB)
        assert not report_tables_current(conn, settings, DEMO_TODAY + timedelta(1), QUIET_JOB)


def test_changed_targets_or_severities_need_a_refresh(loaded):
    engine, settings = loaded
    metric, options = next(iter(settings.targets.items()))
    lowered = options.model_copy(update={"target": options.target / 2})
    lower = replace(settings, targets={**settings.targets, metric: lowered})
    other = "warning" if options.severity == "critical" else "critical"
    milder = replace(
        settings,
        targets={**settings.targets, metric: options.model_copy(update={"severity": other})},
    )
    with engine.connect() as conn:
        assert not report_tables_current(conn, lower, DEMO_TODAY, QUIET_JOB)
        assert not report_tables_current(conn, milder, DEMO_TODAY, QUIET_JOB)


def test_a_row_this_job_wrote_needs_a_refresh(loaded):
    engine, settings = loaded
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(insert(sync_run).values(_sync_run(QUIET_JOB, "quiet-run")))
        _carry(conn, "quiet-run")
        assert not report_tables_current(conn, settings, DEMO_TODAY, QUIET_JOB)
        tx.rollback()


def _carry(conn, run_id: str) -> None:  # noqa: ANN001
    """One permit application now carries sync run ``run_id`` (the run wrote it)."""
    key = conn.execute(select(permit_application.c.application_id).limit(1)).scalar_one()
    conn.execute(
        update(permit_application)
        .where(permit_application.c.application_id == key)
        .values(sync_run_id=run_id)
    )


def test_a_row_written_by_another_job_since_the_refresh_needs_one(loaded):
    engine, settings = loaded
    with engine.connect() as conn, conn.begin() as tx:  # a job that crashed before its refresh
        conn.execute(insert(sync_run).values(_sync_run("crashed-job", "crashed-run")))
        _carry(conn, "crashed-run")
        assert not report_tables_current(conn, settings, DEMO_TODAY, QUIET_JOB)
        tx.rollback()
    with engine.connect() as conn, conn.begin() as tx:  # this job's own runs that wrote nothing
        conn.execute(insert(sync_run).values(_sync_run(QUIET_JOB, "quiet-run")))
        assert report_tables_current(conn, settings, DEMO_TODAY, QUIET_JOB)
        tx.rollback()


def test_quiet_nights_in_a_row_keep_the_tables(loaded):
    """A sync of another job since the refresh that wrote nothing (last night, which kept
    the tables) needs no refresh: else every other quiet night rebuilt them."""
    engine, settings = loaded
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(insert(sync_run).values(_sync_run("last-night", "last-night-run")))
        assert report_tables_current(conn, settings, DEMO_TODAY, QUIET_JOB)
        tx.rollback()


def test_rows_data_quality_moved_since_the_refresh_need_one(loaded):
    engine, settings = loaded
    run = {
        "check_run_id": "quality-run",
        "job_id": "last-night",
        "kind": "data_quality",
        "started_at": now_utc() + timedelta(seconds=1),
        "set_aside": 1,
    }
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(insert(check_run).values(run))
        assert not report_tables_current(conn, settings, DEMO_TODAY, QUIET_JOB)
        tx.rollback()
    with engine.connect() as conn, conn.begin() as tx:  # one that moved nothing
        conn.execute(insert(check_run).values({**run, "set_aside": 0}))
        assert report_tables_current(conn, settings, DEMO_TODAY, QUIET_JOB)
        tx.rollback()
