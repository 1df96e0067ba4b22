"""The 22 metrics on hand-built core rows, on SQLite and PostgreSQL.

Each test inserts a handful of records straight into the core tables and checks
numerators, denominators, values and statuses against figures worked out by
hand (comments show the working), plus the record-level populations behind
every rate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from pgschema import fresh_schema_url
from sqlalchemy import Engine, event, func, select
from sqlalchemy.engine import Connection

from rulewatch.common.metric_ids import METRICS, RATE_METRICS
from rulewatch.common.periods import Period
from rulewatch.common.workdays import WorkingCalendar, calendar_of
from rulewatch.config.settings import TargetOptions, load_settings
from rulewatch.metrics.compute import (
    MetricValue,
    compute_metrics,
    compute_metrics_history,
    early_warnings,
    rate_population,
)
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import (
    calendar_day,
    document,
    inspection,
    officer,
    permit_application,
)

D = date.fromisoformat
AS_OF = D("2024-01-10")
TARGETS = load_settings({}).targets


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return calendar_of(load_settings({}))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def warehouse(request, tmp_path_factory, calendar: WorkingCalendar) -> Iterator[Engine]:  # noqa: ANN001
    """One migrated warehouse per backend for this module (per xdist worker).

    Like conftest's ``warehouse_url`` (a file, or a fresh PostgreSQL schema), but
    built once: filling ``calendar_day`` takes about a second on PostgreSQL, and
    each test runs in a transaction that is rolled back, so tests stay isolated.
    """
    if request.param == "sqlite":
        engine = open_warehouse(f"sqlite:///{tmp_path_factory.mktemp('wh') / 'w.db'}", calendar)
        yield engine
        engine.dispose()
        return
    with fresh_schema_url() as url:
        engine = open_warehouse(url, calendar)
        yield engine
        engine.dispose()


@pytest.fixture
def conn(warehouse: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back after the test."""
    with warehouse.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


_BOOKKEEPING = {
    "changed_at": datetime(2024, 1, 1),
    "record_hash": "0" * 64,
    "is_set_aside": False,
    "sync_run_id": "test-run",
}
_KEYS = {
    permit_application: "application_id",
    inspection: "inspection_no",
    officer: "officer_id",
    document: "doc_id",
}
_DEFAULTS = {
    officer: {"is_active": True, "first_seen_at": datetime(2024, 1, 1)},
    document: {"is_deleted": False},
}


def insert(conn: Connection, table, key: str, **values) -> None:  # noqa: ANN001 - Table
    """One core row with the NOT NULL bookkeeping filled in; ``*_on`` given as ISO text."""
    values = {k: D(v) if k.endswith("_on") and isinstance(v, str) else v for k, v in values.items()}
    conn.execute(
        table.insert(),
        {_KEYS[table]: key, **_BOOKKEEPING, **_DEFAULTS.get(table, {}), **values},
    )


def metrics(
    conn: Connection,
    period: str,
    as_of: date = AS_OF,
    targets=TARGETS,  # noqa: ANN001
) -> dict[str, MetricValue]:
    return {m.metric: m for m in compute_metrics(conn, Period.parse(period), as_of, targets)}


def fraction(m: MetricValue) -> tuple[int | None, int | None]:
    return m.numerator, m.denominator


def population(
    conn: Connection, metric: str, period: str, as_of: date = AS_OF
) -> dict[str, str | None]:
    """natural key -> reason (None when the record passes)."""
    rows = conn.execute(rate_population(metric, Period.parse(period), as_of)).all()
    for key, passes, reason in rows:
        assert isinstance(passes, bool)
        assert (reason is None) == passes, (key, passes, reason)
    return {key: reason for key, _, reason in rows}


def assert_populations_match(conn: Connection, period: str, as_of: date) -> None:
    """count(*) and count(passes) of every rate's population equal the aggregate."""
    figures = metrics(conn, period, as_of)
    for metric in RATE_METRICS:
        sub = rate_population(metric, Period.parse(period), as_of).subquery()
        total, passing = conn.execute(select(func.count(), func.count().filter(sub.c.passes))).one()
        assert (passing, total) == fraction(figures[metric]), (metric, period, as_of)


# --- data sets ------------------------------------------------------------------------------


def load_permits(conn: Connection) -> None:
    p = permit_application
    # 2023-09-25 -> 2023-10-09: 26, 27, 28 Sep, then National Day 29 Sep .. 6 Oct off,
    # make-up days Sat 7 and Sun 8 Oct, Mon 9 Oct: 6 working days.
    insert(conn, p, "A1", status="approved", received_on="2023-09-25", decided_on="2023-10-09",
           promised_days=6)  # fmt: skip
    insert(conn, p, "A2", status="approved", received_on="2023-09-25", decided_on="2023-10-09",
           promised_days=5)  # fmt: skip
    # decided before received: 0 working days
    insert(conn, p, "A3", status="denied", received_on="2023-03-01", decided_on="2023-02-28",
           promised_days=0)  # fmt: skip
    insert(conn, p, "A4", status="withdrawn", received_on="2023-05-10", decided_on="2023-05-12",
           promised_days=5)  # fmt: skip
    insert(conn, p, "A6", status="approved", received_on="2023-06-01", decided_on="2023-06-02",
           promised_days=5, is_set_aside=True)  # fmt: skip
    insert(conn, p, "A7", status="approved", received_on="2023-07-03", decided_on="2023-07-04",
           promised_days=None)  # fmt: skip
    insert(conn, p, "A8", status="approved", received_on=None, decided_on="2023-07-05",
           promised_days=10)  # fmt: skip
    # 2022-12-28 -> 2023-01-03: 29, 30 Dec, (31 Dec, 1 Jan weekend, 2 Jan holiday), 3 Jan = 3
    insert(conn, p, "A9", status="denied", received_on="2022-12-28", decided_on="2023-01-03",
           promised_days=2)  # fmt: skip
    insert(conn, p, "A10", status="pending", received_on="2023-12-30")


def load_inspections(conn: Connection) -> None:
    t = inspection

    def add(key: str, task: str, on: str, outcome: str, officers: int, certified: bool, **kw):  # noqa: ANN003, ANN202
        kw.setdefault("is_credit_rule_applied", True)
        kw.setdefault("is_published", False)
        insert(conn, t, key, task_type=task, inspected_on=on, outcome=outcome,
               officer_count=officers, is_all_officers_certified=certified, **kw)  # fmt: skip

    # 2023-09-25 -> 2023-10-27: 3 in Sep, 2 make-up, 5 + 5 + 5 = 20 working days
    add("I1", "double_random", "2023-09-25", "compliant", 2, True,
        is_published=True, published_on="2023-10-27")  # fmt: skip
    add("I2", "double_random", "2023-09-25", "penalized", 1, True,
        is_credit_rule_applied=False, is_published=True, published_on="2023-10-30")  # fmt: skip
    add("I3", "double_random", "2023-11-01", "pending", 3, False)
    add("I4", "double_random", "2023-11-02", "compliant", 2, True, is_published=True)
    add("I5", "double_random", "2023-11-03", "compliant", 2, True,
        is_published=True, published_on="2024-01-20")  # fmt: skip
    add("I6", "double_random", "2023-11-06", "referred", 4, True, is_credit_rule_applied=None)
    add("I7", "special", "2023-05-05", "pending", 2, True, is_credit_rule_applied=None)
    add("I8", "double_random", "2023-06-06", "compliant", 2, True, is_set_aside=True)
    add("I9", "double_random", "2024-01-05", "compliant", 2, True)
    add("I10", "routine", "2023-12-01", "compliant", 1, False)


def load_documents(conn: Connection) -> None:
    t = document
    normative, contract = "normative_document", "government_contract"

    def add(key: str, doc_type: str, issued: str | None, **kw) -> None:  # noqa: ANN003
        kw.setdefault("status", "in_force")
        kw.setdefault("is_legality_reviewed", False)
        insert(conn, t, key, doc_type=doc_type, issued_on=issued, title=f"doc {key}", **kw)

    def filing(filed: bool | None, filed_on: str | None, deadline: str | None, accepted=None):  # noqa: ANN001, ANN202
        return {"has_filing": True, "is_filed": filed, "filed_on": filed_on,
                "filing_deadline_on": deadline, "is_filing_accepted": accepted}  # fmt: skip

    def reviewed(on: str | None) -> dict:
        return {"is_legality_reviewed": True, "legality_reviewed_on": on}

    add("D1", normative, "2023-03-01", **reviewed("2023-02-20"),
        **filing(True, "2023-03-20", "2023-03-31", accepted=True))  # fmt: skip
    add("D2", normative, "2023-05-10", **reviewed("2023-05-10"),
        **filing(False, None, "2023-06-09"))  # fmt: skip
    add("D3", normative, "2023-12-11", **reviewed("2023-12-12"),
        **filing(False, None, "2024-01-10"))  # fmt: skip
    add("D4", normative, "2023-12-15", **filing(True, "2024-01-12", "2024-01-14"))
    add("D5", normative, "2023-08-01", **reviewed("2024-01-20"),
        **filing(True, "2023-09-15", "2023-08-31", accepted=False))  # fmt: skip
    add("D6", normative, "2023-09-01", **reviewed(None), **filing(True, None, "2023-10-01"))
    add("D7", normative, "2023-04-01", is_deleted=True, **filing(False, None, "2023-05-01"))
    add("D8", normative, "2023-04-02", is_set_aside=True, **filing(False, None, "2023-05-02"))
    add("D9", contract, "2023-06-01", **reviewed("2023-05-30"))
    add("D10", contract, "2024-01-02", **reviewed("2023-12-29"))
    add("D11", contract, "2023-12-28", **reviewed("2024-01-05"))
    add("D12", "major_decision", "2023-07-07", **reviewed("2023-07-01"))
    add("D13", "other", "2023-07-07")
    add("D14", normative, "2021-01-01", status="repealed", status_changed_on="2023-11-11")
    add("D15", contract, "2021-01-01", status="repealed", status_changed_on="2023-11-11")
    add("D16", normative, "2020-01-01", status="repealed", status_changed_on="2024-01-05")
    add("D17", normative, None, status="draft")
    add("D18", normative, "2023-10-10", status="revised", has_filing=False,
        **reviewed("2023-10-09"))  # fmt: skip
    add("D19", contract, "2023-02-02", **reviewed("2023-02-01"), is_deleted=True)


def load_officers(conn: Connection) -> None:
    o = officer
    insert(conn, o, "O1", role="officer", is_certified=True, certificate_expires_on=None)
    insert(conn, o, "O2", role="officer", is_certified=True, certificate_expires_on="2024-01-10")
    insert(conn, o, "O3", role="officer", is_certified=True, certificate_expires_on="2024-01-09")
    insert(conn, o, "O4", role="officer", is_certified=False)
    insert(conn, o, "O5", role="officer", is_certified=True, is_active=False)
    insert(conn, o, "O6", role="officer", is_certified=True, is_set_aside=True)
    insert(conn, o, "O7", role="auxiliary", is_certified=False)
    insert(conn, o, "O8", role="auxiliary", is_certified=False, is_active=False)
    insert(conn, o, "O9", role="auxiliary", is_certified=True, certificate_expires_on="2020-01-01")


def load_all(conn: Connection) -> None:
    load_permits(conn)
    load_inspections(conn)
    load_documents(conn)
    load_officers(conn)


# --- permits --------------------------------------------------------------------------------


def test_permits_counts_and_on_time_rate(conn: Connection) -> None:
    load_permits(conn)
    m = metrics(conn, "2023")
    # received in 2023: A1 A2 A3 A4 A7 A10 (A8 has no date, A9 is 2022, A6 set aside)
    assert m["permits.received"].value == 6
    assert m["permits.approved"].value == 4  # A1 A2 A7 A8; A4 withdrawn is never decided
    assert m["permits.denied"].value == 2  # A3 A9
    on_time = m["permits.on_time_rate"]
    assert fraction(on_time) == (2, 6)
    assert on_time.value == pytest.approx(1 / 3)
    assert (on_time.target, on_time.status) == (1.0, "slipped")
    assert population(conn, "permits.on_time_rate", "2023") == {
        "A1": None,
        "A2": "decided in 6 working days, promised 5",
        "A3": None,
        "A7": "no promised days",
        "A8": "no received date",
        "A9": "decided in 3 working days, promised 2",
    }


def test_permits_decisions_after_as_of_have_not_happened(conn: Connection) -> None:
    load_permits(conn)
    m = metrics(conn, "2023", D("2023-10-08"))  # A1, A2 decided the next day
    assert m["permits.approved"].value == 2  # A7 A8
    assert m["permits.received"].value == 5  # A10 (30 Dec) not yet received
    assert fraction(m["permits.on_time_rate"]) == (1, 4)  # A3 of A3 A7 A8 A9
    m = metrics(conn, "2023", D("2023-10-09"))
    assert fraction(m["permits.on_time_rate"]) == (2, 6)


def test_working_days_of_2025_follow_the_official_calendar(conn: Connection) -> None:
    p = permit_application
    # 1 Jan 2025 (a Wednesday) is New Year's Day: 31 Dec 2024 -> 2 Jan 2025 is 1 working day
    insert(conn, p, "B1", status="approved", received_on="2024-12-31", decided_on="2025-01-02",
           promised_days=2)  # fmt: skip
    insert(conn, p, "B2", status="approved", received_on="2024-12-31", decided_on="2025-01-02",
           promised_days=1)  # fmt: skip
    # Fri 3 Jan -> Mon 6 Jan 2025: the weekend does not count
    insert(conn, p, "B3", status="denied", received_on="2025-01-03", decided_on="2025-01-06",
           promised_days=0)  # fmt: skip
    m = metrics(conn, "2025", D("2025-02-01"))
    assert fraction(m["permits.on_time_rate"]) == (2, 3)
    assert not m["permits.on_time_rate"].provisional
    assert population(conn, "permits.on_time_rate", "2025", D("2025-02-01")) == {
        "B1": None,
        "B2": None,
        "B3": "decided in 1 working days, promised 0",
    }


def test_year_on_year(conn: Connection) -> None:
    p = permit_application
    for key, received in (("R1", "2023-02-01"), ("R2", "2023-06-01"), ("R3", "2023-07-01"),
                          ("R4", "2022-03-01"), ("R5", "2022-08-01")):  # fmt: skip
        insert(conn, p, key, status="pending", received_on=received)
    insert(conn, p, "R6", status="approved", received_on="2023-01-02", decided_on="2023-01-03")
    m = metrics(conn, "2023", D("2023-12-31"))
    received = m["permits.received_yoy"]  # 4 in 2023 (R6 too), 2 in 2022
    assert (received.value, fraction(received)) == (1.0, (2, 2))
    assert isinstance(received.value, float)
    assert (received.target, received.status) == (None, "info")
    approved = m["permits.approved_yoy"]  # 1 vs 0: no growth rate
    assert (approved.value, fraction(approved), approved.status) == (None, (1, 0), "info")
    denied = m["permits.denied_yoy"]
    assert (denied.value, fraction(denied), denied.status) == (None, (0, 0), "info")
    # year to date: P' is cut at the as-of date minus one year
    m = metrics(conn, "2023", D("2023-07-01"))
    assert fraction(m["permits.received_yoy"]) == (3, 1)  # R1 R2 R3 R6 vs R4
    assert m["permits.received_yoy"].value == 3.0


def test_year_on_year_on_29_february(conn: Connection) -> None:
    p = permit_application
    insert(conn, p, "F1", status="pending", received_on="2024-02-29")
    insert(conn, p, "F2", status="pending", received_on="2024-02-10")
    insert(conn, p, "F3", status="pending", received_on="2023-02-28")  # in P' (cut 28 Feb)
    insert(conn, p, "F4", status="pending", received_on="2023-03-01")  # after P' cut
    insert(conn, p, "F5", status="pending", received_on="2024-03-01")  # after the as-of date
    for period in ("2024", "2024-Q1", "2024-02"):
        m = metrics(conn, period, D("2024-02-29"))
        assert m["permits.received"].value == 2, period
        yoy = m["permits.received_yoy"]
        assert (fraction(yoy), yoy.value) == ((1, 1), 1.0), period


def test_year_on_year_of_a_month_after_a_leap_february(conn: Connection) -> None:
    p = permit_application
    insert(conn, p, "L1", status="pending", received_on="2024-02-29")  # in P' = 2024-02
    insert(conn, p, "L2", status="pending", received_on="2025-02-10")
    yoy = metrics(conn, "2025-02", D("2025-03-10"))["permits.received_yoy"]
    assert (fraction(yoy), yoy.value) == ((0, 1), 0.0)
    # as of 28 Feb 2025, P' is cut at 28 Feb 2024
    yoy = metrics(conn, "2025-02", D("2025-02-28"))["permits.received_yoy"]
    assert (fraction(yoy), yoy.value) == ((1, 0), None)


def test_quarter_and_month_periods(conn: Connection) -> None:
    p = permit_application
    for key, received in (("Q1", "2023-09-30"), ("Q2", "2023-10-01"), ("Q3", "2023-10-31"),
                          ("Q4", "2023-11-01"), ("Q5", "2023-12-31"), ("Q6", "2024-01-01"),
                          ("Q7", "2022-10-15")):  # fmt: skip
        insert(conn, p, key, status="pending", received_on=received)
    assert metrics(conn, "2023-Q4")["permits.received"].value == 4
    assert metrics(conn, "2023-Q3")["permits.received"].value == 1
    assert metrics(conn, "2023-10")["permits.received"].value == 2
    assert metrics(conn, "2023-11")["permits.received"].value == 1
    assert metrics(conn, "2023-Q4", D("2023-10-31"))["permits.received"].value == 2
    yoy = metrics(conn, "2023-10")["permits.received_yoy"]
    assert (fraction(yoy), yoy.value) == ((1, 1), 1.0)  # Q7 in 2022-10


# --- enforcement ----------------------------------------------------------------------------


def test_enforcement_rates(conn: Connection) -> None:
    load_inspections(conn)
    m = metrics(conn, "2023")
    assert m["enforcement.inspections"].value == 8  # I1-I7, I10 (I8 set aside, I9 in 2024)
    assert m["enforcement.double_random"].value == 6  # I1-I6
    assert fraction(m["enforcement.credit_rule_rate"]) == (4, 6)
    assert population(conn, "enforcement.credit_rule_rate", "2023") == {
        "I1": None,
        "I2": "credit rule not applied",
        "I3": None,
        "I4": None,
        "I5": None,
        "I6": "credit rule not applied",
    }
    # I3 pending left out; I5 published after the as-of date
    assert fraction(m["enforcement.publication_rate"]) == (3, 5)
    assert population(conn, "enforcement.publication_rate", "2023") == {
        "I1": None,
        "I2": None,
        "I4": None,
        "I5": "result not published by 2024-01-10",
        "I6": "result not published",
    }
    assert fraction(m["enforcement.publication_timely_rate"]) == (1, 3)
    assert population(conn, "enforcement.publication_timely_rate", "2023") == {
        "I1": None,  # exactly 20 working days
        "I2": "published in 21 working days, limit 20",
        "I4": "published without a publication date",
    }
    # every task type and outcome, pending included
    assert fraction(m["enforcement.certified_officer_rate"]) == (5, 8)
    assert population(conn, "enforcement.certified_officer_rate", "2023") == {
        "I1": None,
        "I10": "1 officer(s), not all certified",
        "I2": "1 officer(s), at least 2 required",
        "I3": "not every officer certified",
        "I4": None,
        "I5": None,
        "I6": None,
        "I7": None,
    }
    for metric in ("enforcement.credit_rule_rate", "enforcement.certified_officer_rate"):
        assert m[metric].status == "slipped"


def test_publication_after_as_of_has_not_happened(conn: Connection) -> None:
    load_inspections(conn)
    m = metrics(conn, "2023", D("2023-10-27"))  # I2 published on 30 Oct
    assert fraction(m["enforcement.publication_rate"]) == (1, 2)
    assert fraction(m["enforcement.publication_timely_rate"]) == (1, 1)
    assert m["enforcement.publication_timely_rate"].status == "met"
    assert m["enforcement.inspections"].value == 3  # I1 I2 I7


def test_roster(conn: Connection) -> None:
    load_officers(conn)
    m = metrics(conn, "2023")
    # O1 (no expiry) and O2 (valid through 10 Jan); O3 expired, O4 uncertified,
    # O5 left, O6 set aside
    assert m["enforcement.certified_officers"].value == 2
    assert m["enforcement.auxiliary_staff"].value == 2  # O7 O9; O8 left
    assert metrics(conn, "2023", D("2024-01-11"))["enforcement.certified_officers"].value == 1
    # the roster has no dates: any period gives the roster at the as-of date
    later = metrics(conn, "2030")
    assert later["enforcement.certified_officers"].value == 2
    assert later["enforcement.auxiliary_staff"].value == 2
    counts = [m[k] for k in ("enforcement.certified_officers", "enforcement.auxiliary_staff")]
    assert all(c.status == "info" and fraction(c) == (None, None) for c in counts)


# --- docreview ------------------------------------------------------------------------------


def test_docreview(conn: Connection) -> None:
    load_documents(conn)
    m = metrics(conn, "2023")
    # D1-D6 and D18; D7 deleted, D8 set aside, D14/D16 issued earlier, D17 a draft
    assert m["docreview.normative_issued"].value == 7
    assert fraction(m["docreview.filing_rate"]) == (3, 4)
    assert population(conn, "docreview.filing_rate", "2023") == {
        "D1": None,
        "D2": "not filed; deadline 2023-06-09 passed",
        "D5": None,
        "D6": None,
        # D3 due today (not yet due), D4 filed after the as-of date, not yet due
    }
    assert fraction(m["docreview.filing_timely_rate"]) == (1, 3)
    assert population(conn, "docreview.filing_timely_rate", "2023") == {
        "D1": None,
        "D5": "filed 2023-09-15, after the deadline 2023-08-31",
        "D6": "filed without a filing date",
    }
    assert fraction(m["docreview.filing_compliance_rate"]) == (1, 2)
    assert population(conn, "docreview.filing_compliance_rate", "2023") == {
        "D1": None,
        "D5": "filing not accepted",
    }
    assert fraction(m["docreview.legality_review_rate"]) == (5, 10)
    assert population(conn, "docreview.legality_review_rate", "2023") == {
        "D1": None,
        "D11": "legality reviewed 2024-01-05, after issue 2023-12-28",
        "D12": None,
        "D18": None,
        "D2": None,  # reviewed on the day of issue
        "D3": "legality reviewed 2023-12-12, after issue 2023-12-11",
        "D4": "no legality review",
        "D5": "no legality review by 2024-01-10",
        "D6": "legality review without a date",
        "D9": None,
    }
    assert m["docreview.contracts_reviewed"].value == 2  # D9 D10 by review date; D19 deleted
    assert m["docreview.repealed"].value == 1  # D14; D15 is a contract, D16 in 2024


def test_docreview_events_after_as_of_have_not_happened(conn: Connection) -> None:
    load_documents(conn)
    m = metrics(conn, "2023", D("2023-09-10"))
    # D5 filed on 15 Sep: not filed yet, and its deadline (31 Aug) has passed
    assert fraction(m["docreview.filing_rate"]) == (2, 4)  # D1 D6 of D1 D2 D5 D6
    assert population(conn, "docreview.filing_rate", "2023", D("2023-09-10"))["D5"] == (
        "not filed; deadline 2023-08-31 passed"
    )
    assert fraction(m["docreview.filing_compliance_rate"]) == (1, 1)  # D1
    # contracts: D9 reviewed 30 May 2023 counts; D10 (29 Dec) not yet
    assert metrics(conn, "2023", D("2023-12-28"))["docreview.contracts_reviewed"].value == 1
    # deadline strictly before the as-of date: D2 is due on 9 Jun
    assert fraction(metrics(conn, "2023", D("2023-06-09"))["docreview.filing_rate"]) == (1, 1)
    assert fraction(metrics(conn, "2023", D("2023-06-10"))["docreview.filing_rate"]) == (1, 2)


def test_early_warnings(conn: Connection) -> None:
    t, normative = document, "normative_document"

    def add(key: str, issued: str, deadline: str, filed_on: str | None = None, **kw) -> None:  # noqa: ANN003
        insert(conn, t, key, doc_type=normative, issued_on=issued, title=f"doc {key}",
               has_filing=True, is_filed=filed_on is not None, filed_on=filed_on,
               filing_deadline_on=deadline, **kw)  # fmt: skip

    add("W1", "2023-12-11", "2024-01-10")  # due today: still a warning
    add("W2", "2023-12-15", "2024-01-17")  # as_of + 7
    add("W3", "2023-12-16", "2024-01-18")  # as_of + 8: too far
    add("W4", "2023-12-01", "2024-01-09")  # already missed: a slip, not a warning
    add("W5", "2024-01-11", "2024-01-12")  # issued after the as-of date
    add("W6", "2023-12-20", "2024-01-12", filed_on="2024-01-09")  # filed
    add("W7", "2023-12-20", "2024-01-12", filed_on="2024-01-11")  # filed later: not yet filed
    add("W8", "2023-12-20", "2024-01-12", is_deleted=True)
    add("W9", "2023-12-20", "2024-01-12", is_set_aside=True)
    insert(conn, t, "W10", doc_type="government_contract", issued_on=D("2023-12-20"),
           has_filing=True, is_filed=False, filing_deadline_on=D("2024-01-12"))  # fmt: skip
    warnings = early_warnings(conn, AS_OF, 7)
    assert [(w["doc_id"], w["days_left"]) for w in warnings] == [
        ("W1", 0),
        ("W7", 2),
        ("W2", 7),
    ]
    assert warnings[0] == {
        "doc_id": "W1",
        "title": "doc W1",
        "issued_on": D("2023-12-11"),
        "deadline": D("2024-01-10"),
        "days_left": 0,
    }
    assert [w["doc_id"] for w in early_warnings(conn, AS_OF, 0)] == ["W1"]


# --- statuses, empty data, the as-of cut ----------------------------------------------------


def test_no_data_and_the_as_of_date_before_the_period(conn: Connection) -> None:
    empty = metrics(conn, "2023")
    load_all(conn)
    before = metrics(conn, "2024", D("2023-12-31"))
    for m in (empty, before):
        for name, (kind, _, _) in METRICS.items():
            v = m[name]
            if kind == "rate":
                assert (v.value, fraction(v), v.status) == (None, (0, 0), "no_data"), name
            elif kind == "yoy":
                assert (v.value, v.status) == (None, "info"), name
                assert fraction(v) == (0, 0), name
            elif name in ("enforcement.certified_officers", "enforcement.auxiliary_staff"):
                assert v.value == (0 if m is empty else 3 if "cert" in name else 2), name
            else:
                assert (v.value, v.status) == (0, "info"), name


def test_status_against_targets(conn: Connection) -> None:
    load_permits(conn)  # on_time_rate is 2 / 6

    def on_time(target: float | None) -> MetricValue:
        targets = {} if target is None else {"permits.on_time_rate": TargetOptions(target=target)}
        return metrics(conn, "2023", AS_OF, targets)["permits.on_time_rate"]

    assert on_time(1 / 3).status == "met"
    assert on_time(0.34).status == "slipped"
    assert on_time(0.0).status == "met"
    no_target = on_time(None)
    assert (no_target.target, no_target.status) == (None, "info")
    assert no_target.value == pytest.approx(1 / 3)


def test_a_rate_without_a_target_is_info_even_without_data(conn: Connection) -> None:
    # "a metric without a target has status info": no_data is for a target with no value
    m = metrics(conn, "2023", AS_OF, {})["permits.on_time_rate"]
    assert (m.value, fraction(m), m.target, m.status) == (None, (0, 0), None, "info")
    m = metrics(conn, "2023", AS_OF)["permits.on_time_rate"]
    assert (m.value, m.target, m.status) == (None, 1.0, "no_data")


def test_json_shape_order_and_round_trips(conn: Connection) -> None:
    load_all(conn)
    queries: list[str] = []

    def count(*args) -> None:  # noqa: ANN002
        queries.append(args[2])

    event.listen(conn, "before_cursor_execute", count)
    values = compute_metrics(conn, Period.parse("2023"), AS_OF, TARGETS)
    event.remove(conn, "before_cursor_execute", count)
    assert len(queries) <= 4  # one aggregate per core table
    assert [v.metric for v in values] == list(METRICS)
    rows = json.loads(json.dumps([v.to_json() for v in values]))
    keys = ["metric", "period", "as_of", "value", "numerator", "denominator", "target", "status"]
    for row, v in zip(rows, values, strict=True):
        assert list(row) == keys
        assert (row["period"], row["as_of"]) == ("2023", "2024-01-10")
        kind = METRICS[v.metric][0]
        if kind == "count":
            assert type(row["value"]) is int and row["numerator"] is None
        else:
            assert row["value"] is None or type(row["value"]) is float
            assert type(row["numerator"]) is int and type(row["denominator"]) is int
    filing = next(r for r in rows if r["metric"] == "docreview.filing_rate")
    assert filing == {"metric": "docreview.filing_rate", "period": "2023", "as_of": "2024-01-10",
                      "value": 0.75, "numerator": 3, "denominator": 4, "target": 1.0,
                      "status": "slipped"}  # fmt: skip


@pytest.mark.parametrize(
    ("period", "as_of"),
    [("2023", AS_OF), ("2023", D("2023-09-10")), ("2023-Q4", AS_OF), ("2023-10", AS_OF),
     ("2024", AS_OF), ("2024", D("2023-12-31"))],
)  # fmt: skip
def test_rate_population_equals_the_aggregate(conn: Connection, period: str, as_of: date) -> None:
    load_all(conn)
    assert_populations_match(conn, period, as_of)


@pytest.mark.parametrize("year", [2023, 2024])
def test_history_in_one_query_per_table_equals_each_day_computed_alone(
    conn: Connection, year: int
) -> None:
    """The backfill's set-based history gives every day exactly what compute_metrics
    gives it (2024: a leap year, its year-earlier dates shift; every
    ninth day plus the month ends and 29 February)."""
    load_all(conn)
    period = Period.parse(str(year))
    days = sorted(
        {period.start + timedelta(days=n) for n in range(0, 366, 9)}
        | {D(f"{year}-{m:02d}-01") - timedelta(days=1) for m in range(2, 13)}
        | ({D("2024-02-29"), D("2024-03-01")} if year == 2024 else set())
        | {period.end}
    )
    days = [d for d in days if d.year == year]
    history = compute_metrics_history(conn, period, days, TARGETS)
    assert list(history) == days
    for day in days:
        assert history[day] == compute_metrics(conn, period, day, TARGETS), day
    assert any(m.value for m in history[period.end])  # the data set counts in that year
    with pytest.raises(ValueError, match="outside"):
        compute_metrics_history(conn, period, [D(f"{year + 1}-01-01")], TARGETS)


def test_backfill_fills_only_the_missing_days_across_a_new_year(
    warehouse_url: str, calendar: WorkingCalendar
) -> None:
    """Days that have rows keep them (a nightly row is never replaced); each missing
    day of each year gets the figures compute_metrics gives it; a second run writes none."""
    from rulewatch.config.settings import load_settings as settings_of
    from rulewatch.report.tables import backfill_history, store_metrics
    from rulewatch.warehouse.schema import report_metric

    engine = open_warehouse(warehouse_url, calendar)
    settings = settings_of({"RULEWATCH_WAREHOUSE_URL": warehouse_url})
    kept = D("2023-12-31")
    with engine.begin() as conn:
        load_all(conn)
        nightly = compute_metrics(conn, Period.parse("2023"), kept, TARGETS)
        store_metrics(conn, Period.parse("2023"), nightly, computed_by="nightly")
    assert backfill_history(engine, settings, D("2023-12-29"), D("2024-01-02")) == 4 * 22
    assert backfill_history(engine, settings, D("2023-12-29"), D("2024-01-02")) == 0
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                report_metric.c.as_of,
                report_metric.c.period,
                report_metric.c.metric,
                report_metric.c.numerator,
                report_metric.c.denominator,
                report_metric.c.computed_by,
            )
        ).all()
        assert {r.as_of for r in rows} == {D("2023-12-29") + timedelta(n) for n in range(5)}
        for day in sorted({r.as_of for r in rows}):
            expected = compute_metrics(conn, Period.parse(str(day.year)), day, settings.targets)
            got = {(r.metric, r.numerator, r.denominator) for r in rows if r.as_of == day}
            assert got == {(m.metric, m.numerator, m.denominator) for m in expected}, day
            assert {r.period for r in rows if r.as_of == day} == {str(day.year)}
            by = {r.computed_by for r in rows if r.as_of == day}
            assert by == ({"nightly"} if day == kept else {"backfill"}), day
    engine.dispose()


def test_rate_population_rejects_a_count() -> None:
    with pytest.raises(ValueError, match="not a rate"):
        rate_population("permits.received", Period.parse("2023"), AS_OF)


# --- the calendar ---------------------------------------------------------------------------


def test_working_calendar_national_day(calendar: WorkingCalendar) -> None:
    assert calendar.working_days(D("2023-09-28"), D("2023-10-06")) == 0  # holidays + weekend
    assert calendar.working_days(D("2023-09-28"), D("2023-10-08")) == 2  # make-up Sat, Sun
    assert calendar.working_days(D("2023-10-09"), D("2023-10-09")) == 0
    assert calendar.working_days(D("2023-10-10"), D("2023-10-09")) == 0
    assert calendar.working_days(D("2024-12-31"), D("2025-01-01")) == 0  # New Year's Day 2025


def test_sql_calendar_agrees_with_working_calendar(
    conn: Connection, calendar: WorkingCalendar
) -> None:
    first, last = D("2022-12-01"), D("2025-01-31")
    seq = dict(
        conn.execute(
            select(calendar_day.c.day, calendar_day.c.workday_seq).where(
                calendar_day.c.day.between(first, last)
            )
        ).all()
    )
    assert len(seq) == (last - first).days + 1
    days = sorted(seq)
    pairs = [(a, b) for i in range(0, len(days), 5) for a in [days[i]]
             for b in days[max(i - 3, 0) : i + 45 : 2]]  # fmt: skip
    pairs += [(first, last), (D("2023-01-01"), D("2023-12-31")), (D("2024-12-31"), last)]
    for a, b in pairs:
        sql = seq[b] - seq[a] if b > a else 0
        assert sql == calendar.working_days(a, b), (a, b)
    assert seq[D("2023-10-09")] - seq[D("2023-09-25")] == 6
    assert all(
        calendar.is_working(d) == bool(w)
        for d, w in conn.execute(
            select(calendar_day.c.day, calendar_day.c.is_working).where(
                calendar_day.c.day.between(first, last)
            )
        )
    )
    assert first + timedelta(days=len(days) - 1) == last
