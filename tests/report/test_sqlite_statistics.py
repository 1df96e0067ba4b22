"""SQLite plans the figures' date ranges by the date indexes once it has statistics:
without them it reads every row of the agency through the key (agency_id first)."""

from __future__ import annotations

from report_support import demo_warehouse, warehouse_url
from sqlalchemy import select

from rulewatch.warehouse.db import refresh_statistics
from rulewatch.warehouse.schema import permit_application


def _plan(engine, query) -> str:  # noqa: ANN001
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").fetchall()
    return " / ".join(str(r[-1]) for r in rows)


def test_a_months_applications_are_read_by_the_date_index_after_analyze(tmp_path):  # noqa: ANN001
    t = permit_application
    month = select(t.c.application_id).where(
        t.c.agency_id == "default",
        t.c.decided_on.between("2024-04-01", "2024-04-30"),
    )
    with warehouse_url("sqlite", tmp_path) as url, demo_warehouse(url, tmp_path) as (engine, _):
        before = _plan(engine, month)
        assert refresh_statistics(engine, wrote=False) is False  # a quiet night: no ANALYZE
        assert _plan(engine, month) == before
        assert refresh_statistics(engine) is True
        after = _plan(engine, month)
    assert "decided_on" not in before  # the key's prefix: every row of the agency
    assert "ix_permit_application_decided_on" in after, after
