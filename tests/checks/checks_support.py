"""Helpers of the check tests: warehouses per backend, core rows, hand-built data.

GX reads committed data over its own connection, so these tests commit; each
warehouse is a fresh SQLite file or PostgreSQL schema.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from pgschema import fresh_schema_url
from sqlalchemy import Engine, Table

from rulewatch.checks.config import ChecksConfig, load_checks_config
from rulewatch.common.workdays import WorkingCalendar, calendar_of
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, Settings, load_settings
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import document, inspection, officer, permit_application

D = date.fromisoformat
AS_OF = D("2024-05-20")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def calendar() -> WorkingCalendar:
    return calendar_of(load_settings({}))


@contextmanager
def warehouse_url(backend: str, folder: Path) -> Iterator[str]:
    """A URL of an empty warehouse: an SQLite file in ``folder`` or a fresh PG schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'warehouse.db'}"
        return
    with fresh_schema_url() as url:
        yield url


@contextmanager
def warehouse(backend: str, folder: Path) -> Iterator[tuple[Engine, Settings]]:
    """A migrated warehouse and settings whose data dir is ``folder``."""
    with warehouse_url(backend, folder) as url:
        settings = make_settings(url, folder)
        engine = open_warehouse(url, calendar())
        try:
            yield engine, settings
        finally:
            engine.dispose()


def make_settings(url: str, data_dir: Path, config_dir: Path | None = None) -> Settings:
    env = {"RULEWATCH_WAREHOUSE_URL": url, "RULEWATCH_DATA_DIR": str(data_dir)}
    if config_dir is not None:
        env["RULEWATCH_CONFIG_DIR"] = str(config_dir)
    return load_settings(env)


def config_copy(folder: Path, **replacements: str) -> Path:
    """A copy of the package config; each ``old=new`` text replacement in checks.yaml."""
    target = folder / "config"
    if not target.exists():
        shutil.copytree(PACKAGE_CONFIG_DIR, target)
    path = target / "checks.yaml"
    body = path.read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert old in body, old
        body = body.replace(old, new)
    path.write_text(body, encoding="utf-8")
    return target


def checks_of(settings: Settings) -> ChecksConfig:
    return load_checks_config(settings)


_KEYS = {
    permit_application: "application_id",
    inspection: "inspection_no",
    officer: "officer_id",
    document: "doc_id",
}
_DEFAULTS: dict[Table, dict[str, Any]] = {
    officer: {"is_active": True, "first_seen_at": datetime(2024, 1, 1)},
    document: {"is_deleted": False},
}


def row(table: Table, key: str, run: str = "run-1", **values: Any) -> dict[str, Any]:
    """One core row with the NOT NULL bookkeeping filled in; ``*_on`` given as ISO text."""
    values = {k: D(v) if k.endswith("_on") and isinstance(v, str) else v for k, v in values.items()}
    return {
        _KEYS[table]: key,
        "changed_at": datetime(2024, 5, 1),
        "record_hash": f"hash-{key}",
        "is_set_aside": False,
        "sync_run_id": run,
        **_DEFAULTS.get(table, {}),
        **values,
    }


def insert(engine: Engine, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (missing columns null) and commit."""
    columns = {k for r in rows for k in r}
    with engine.begin() as conn:
        conn.execute(table.insert(), [{c: r.get(c) for c in columns} for r in rows])


def _officers(*certified: bool) -> dict[str, Any]:
    entries = [{"officer_id": f"ZF-{i:03d}", "certified": c} for i, c in enumerate(certified, 1)]
    return {
        "officers": json.dumps(entries),
        "officer_count": len(entries),
        "is_all_officers_certified": all(certified),
    }


#: The offenders of every target in 2024 as of AS_OF in :func:`seed_targets` (worked by hand).
EXPECTED_2024 = {
    "permits.on_time_rate": {"P2", "P3"},  # P2 late, P3 no promised days
    "enforcement.credit_rule_rate": {"I2"},
    "enforcement.publication_rate": {"I3", "I6"},  # I6 published after the as-of date
    "enforcement.publication_timely_rate": {"I4"},
    "enforcement.certified_officer_rate": {"I2", "I5"},  # one officer; one uncertified
    "docreview.filing_rate": {"D2", "D8"},  # D8 filed after the as-of date
    "docreview.filing_timely_rate": {"D4"},
    "docreview.filing_compliance_rate": {"D4"},
    "docreview.legality_review_rate": {"D5", "D6"},  # never reviewed; reviewed after issue
}


def seed_targets(engine: Engine) -> None:
    """Records with known offenders for every target (see EXPECTED_2024)."""
    pa, ins, doc = permit_application, inspection, document
    decided = {"status": "approved", "permit_type": "new", "category": "A"}
    insert(
        engine,
        pa,
        [
            row(pa, "P1", received_on="2024-03-01", decided_on="2024-03-05", promised_days=10, **decided),
            row(pa, "P2", received_on="2024-03-01", decided_on="2024-04-30", promised_days=5,
                **{**decided, "status": "denied"}),
            row(pa, "P3", received_on="2024-02-01", decided_on="2024-02-05", promised_days=None, **decided),
            row(pa, "P4", received_on="2024-02-01", promised_days=5, **{**decided, "status": "withdrawn"}),
            row(pa, "P5", received_on="2024-04-01", decided_on="2024-06-01", promised_days=1, **decided),
            row(pa, "P6", received_on="2024-01-01", decided_on="2024-04-01", promised_days=1,
                is_set_aside=True, **decided),
        ],
    )  # fmt: skip
    dr = {"task_type": "double_random", "is_credit_rule_applied": True, "outcome": "compliant"}
    insert(
        engine,
        ins,
        [
            row(ins, "I1", inspected_on="2024-03-04", is_published=True, published_on="2024-03-08",
                **dr, **_officers(True, True)),
            row(ins, "I2", inspected_on="2024-02-01", is_published=False,
                **{**dr, "is_credit_rule_applied": False, "outcome": "pending"}, **_officers(True)),
            row(ins, "I3", inspected_on="2024-02-05", is_published=False,
                **{**dr, "outcome": "penalized"}, **_officers(True, True)),
            row(ins, "I4", inspected_on="2024-01-02", is_published=True, published_on="2024-04-01",
                **dr, **_officers(True, True)),
            row(ins, "I5", inspected_on="2024-03-01", is_published=False,
                **{**dr, "task_type": "special", "is_credit_rule_applied": False},
                **_officers(True, False)),
            row(ins, "I6", inspected_on="2024-03-01", is_published=True, published_on="2024-06-01",
                **dr, **_officers(True, True)),
            row(ins, "I7", inspected_on="2023-12-01", is_published=False,
                **{**dr, "is_credit_rule_applied": False}, **_officers(True)),
            row(ins, "I8", inspected_on="2024-02-02", is_published=False, is_set_aside=True,
                **{**dr, "is_credit_rule_applied": False}, **_officers(True)),
        ],
    )  # fmt: skip
    nd = {"doc_type": "normative_document", "status": "in_force", "has_filing": True}
    insert(
        engine,
        doc,
        [
            row(doc, "D1", issued_on="2024-01-10", is_filed=True, filed_on="2024-01-20",
                filing_deadline_on="2024-02-09", is_filing_accepted=True,
                is_legality_reviewed=True, legality_reviewed_on="2024-01-05", **nd),
            row(doc, "D2", issued_on="2024-03-05", is_filed=False, filing_deadline_on="2024-04-04",
                is_legality_reviewed=True, legality_reviewed_on="2024-03-01", **nd),
            row(doc, "D3", issued_on="2024-04-23", is_filed=False, filing_deadline_on="2024-05-23",
                is_legality_reviewed=True, legality_reviewed_on="2024-04-20", **nd),
            row(doc, "D4", issued_on="2024-01-15", is_filed=True, filed_on="2024-03-01",
                filing_deadline_on="2024-02-14", is_filing_accepted=False,
                is_legality_reviewed=True, legality_reviewed_on="2024-01-10", **nd),
            row(doc, "D5", issued_on="2024-02-01", is_legality_reviewed=False,
                **{**nd, "doc_type": "government_contract", "has_filing": False}),
            row(doc, "D6", issued_on="2024-02-01", is_legality_reviewed=True,
                legality_reviewed_on="2024-02-05",
                **{**nd, "doc_type": "major_decision", "has_filing": False}),
            row(doc, "D7", issued_on="2024-02-10", is_filed=False, filing_deadline_on="2024-03-10",
                is_deleted=True, is_legality_reviewed=False, **nd),
            row(doc, "D8", issued_on="2024-02-01", is_filed=True, filed_on="2024-06-01",
                filing_deadline_on="2024-03-01", is_legality_reviewed=True,
                legality_reviewed_on="2024-01-20", **nd),
        ],
    )  # fmt: skip
