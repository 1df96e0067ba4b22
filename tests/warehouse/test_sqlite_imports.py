"""A SQLite warehouse's process never imports PostgreSQL's driver (0.1 s a night)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys
from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import load_settings
from rulewatch.flows import nightly  # everything a sync imports
from rulewatch.warehouse.db import open_warehouse

engine = open_warehouse(sys.argv[1], calendar_of(load_settings({})))
with engine.connect() as conn:
    conn.exec_driver_sql("SELECT 1")
print("psycopg" in sys.modules)
"""


def test_a_sqlite_warehouse_does_not_load_psycopg(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
