"""Early warnings of double-random results near their 20 working days: exactly the
inspections whose elapsed working days fall in the window, across a long holiday."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select

from rulewatch.alerts.announce import early_warning_list
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.metrics.compute import PUBLICATION_LIMIT_WORKING_DAYS
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import calendar_day, inspection

AS_OF = date(2025, 10, 24)  # after National Day: 1-8 October off, make-up days around it


def test_the_window_is_counted_in_working_days(warehouse_url: str) -> None:
    engine = open_warehouse(warehouse_url, calendar_of(load_settings({})))
    days = [AS_OF - timedelta(n) for n in range(90)]
    rows = [
        {
            "inspection_no": f"I-{day.isoformat()}",
            "task_type": "double_random",
            "inspected_on": day,
            "outcome": "compliant",
            "officer_count": 2,
            "is_all_officers_certified": True,
            "is_credit_rule_applied": True,
            "is_published": False,
            "published_on": None,
            "changed_at": datetime(2025, 10, 1),
            "record_hash": "0" * 64,
            "is_set_aside": False,
            "sync_run_id": "test-run",
        }
        for day in days
    ]
    try:
        with engine.begin() as conn:
            conn.execute(inspection.insert(), rows)
            seq = dict(conn.execute(select(calendar_day.c.day, calendar_day.c.workday_seq)).all())
        for window in (5, 30):
            limit = PUBLICATION_LIMIT_WORKING_DAYS
            expected = sorted(
                f"I-{day.isoformat()}"
                for day in days
                if limit - window <= seq[AS_OF] - seq[day] <= limit
            )
            with engine.connect() as conn:
                found = early_warning_list(conn, AS_OF, window)
            assert sorted(w.natural_key for w in found) == expected
            assert expected and min(expected) < f"I-{AS_OF - timedelta(28):%Y-%m-%d}"
    finally:
        engine.dispose()
