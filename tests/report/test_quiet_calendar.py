"""After the sources' load, the calendar table is brought up to the new rows' years
only when the job wrote a row: a quiet night leaves it as opening the warehouse did."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from report_support import demo_warehouse, warehouse_url
from sqlalchemy import Engine, func, insert, select, update

from rulewatch.config.settings import Settings
from rulewatch.flows import nightly
from rulewatch.warehouse.schema import calendar_day, now_utc, permit_application, sync_run

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, tmp_path_factory) -> Iterator[tuple[Engine, Settings]]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp(f"quiet-calendar-{request.param}")
    with warehouse_url(request.param, folder) as url, demo_warehouse(url, folder) as loaded:
        yield loaded


def _last_day(engine: Engine) -> date:
    with engine.connect() as conn:
        return conn.execute(select(func.max(calendar_day.c.day))).scalar_one()


def test_a_quiet_night_leaves_the_calendar_and_a_new_years_row_extends_it(loaded, monkeypatch):
    engine, settings = loaded
    asked: list[object] = []
    ensure = nightly.ensure_calendar
    monkeypatch.setattr(nightly, "ensure_calendar", lambda *a: asked.append(a) or ensure(*a))
    with engine.begin() as conn:  # the quiet job's sync run, which wrote nothing
        conn.execute(
            insert(sync_run).values(
                sync_run_id="quiet-run",
                job_id="quiet-job",
                source="permits",
                is_full_refresh=False,
                started_at=now_utc() + timedelta(seconds=1),
                status="succeeded",
            )
        )
    before = _last_day(engine)
    assert nightly.calendar_after_sync(engine, settings, "quiet-job") is False
    assert asked == [] and _last_day(engine) == before

    year = before.year + 3  # a row of a year the table does not reach yet
    with engine.begin() as conn:
        key = conn.execute(select(permit_application.c.application_id).limit(1)).scalar_one()
        conn.execute(
            update(permit_application)
            .where(permit_application.c.application_id == key)
            .values(sync_run_id="quiet-run", received_on=date(year, 1, 5))
        )
    assert nightly.calendar_after_sync(engine, settings, "quiet-job") is True
    assert len(asked) == 1 and _last_day(engine) == date(year, 12, 31)
