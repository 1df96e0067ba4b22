"""Shared by the city and agency report tests: three agencies' report tables, written
straight into a warehouse (the report only reads tables), and their config folder."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine, insert

from rulewatch.common.periods import Period
from rulewatch.config.settings import PACKAGE_CONFIG_DIR
from rulewatch.warehouse.schema import (
    report_metric,
    report_offender,
    report_target_status,
    sync_run,
    sync_state,
)

AS_OF = date(2024, 5, 20)
PERIOD = "2024"
FILING = "docreview.filing_rate"
CREDIT = "enforcement.credit_rule_rate"
SCRIPT = "<script>window.__pwned='name'</script>"
HOSTILE_NAME = f'=HYPERLINK("http://x","y") {SCRIPT}'  # beta's English name
HOSTILE_KEYS = ["=1+1", "@SUM(1)", "<img src=x onerror=\"window.__pwned='key'\">"]
FAILED = "-1 permits: HTTP 500 <b onmouseover=\"window.__pwned='error'\">x</b>"

AGENCIES = f"""\
supervisor:
  name: {{zh: 台州市司法局, en: Taizhou Justice Bureau}}
agencies:
  - id: alpha
    name: {{zh: 甲局, en: Alpha Bureau}}
    sources:
      permits: {{base_url: "http://127.0.0.1:1/alpha", token_env: ALPHA_TOKEN}}
      docreview: {{base_url: "http://127.0.0.1:1/alpha", user_env: U, password_env: P}}
  - id: beta
    name: {{zh: {json.dumps("乙局" + SCRIPT)}, en: {json.dumps(HOSTILE_NAME)}}}
    sources:
      permits: {{base_url: "http://127.0.0.1:1/beta", token_env: BETA_TOKEN}}
  - id: gamma
    name: {{zh: 丙局, en: Gamma Bureau}}
    sources:
      docreview: {{base_url: "http://127.0.0.1:1/gamma", user_env: U, password_env: P}}
"""

PUBLISHED = """\
reports:
  - period: "2024"
    agency: beta
    title: 乙局2024年度报告
    figures:
      - {metric: enforcement.credit_rule_rate, value: "100%"}
      - {metric: enforcement.inspections, value: 7}
  - period: "2024"
    agency: all
    title: 全市2024年度报告
    figures:
      - {metric: docreview.filing_rate, value: "80%"}
"""

# (agency, metric): numerator, denominator, status, slipped since. The rollup of filing
# is 11 / 15 = 73.33%; the mean of the three rates would be 71.67%.
STATUSES = {
    ("alpha", FILING): (1, 4, "slipped", date(2024, 4, 5)),
    ("beta", FILING): (9, 10, "slipped", date(2024, 5, 2)),
    ("gamma", FILING): (1, 1, "met", None),
    ("alpha", CREDIT): (5, 5, "met", None),
    ("beta", CREDIT): (5, 5, "met", None),
    ("gamma", CREDIT): (0, 0, "no_data", None),
    ("default", FILING): (0, 3, "slipped", date(2024, 1, 1)),  # before agencies.yaml
}
ROLLUP = {FILING: (11, 15, "slipped"), CREDIT: (10, 10, "met")}


def _metric_row(agency, metric, period, as_of, num, den, status, kind="rate"):  # noqa: ANN001, ANN202, PLR0913
    p = Period.parse(period)
    value = None if den == 0 else num / den
    if kind == "count":
        value, num, den = float(num), None, None
    return {
        "agency_id": agency,
        "metric": metric,
        "period": period,
        "as_of": as_of,
        "period_kind": "year" if len(period) == 4 else "month",
        "period_start_on": p.start,
        "period_end_on": p.end,
        "metric_kind": kind,
        "value": value,
        "numerator": num,
        "denominator": den,
        "target": 1.0 if kind == "rate" else None,
        "status": status,
        "computed_by": "nightly",
        "computed_at": datetime(2024, 5, 20, 2, 0),
    }


def populate(engine: Engine) -> None:
    """The rows a night of three agencies and the rollup would have left."""
    now = datetime(2024, 5, 20, 2, 0)
    statuses = [
        {
            "agency_id": agency,
            "metric": metric,
            "period": PERIOD,
            "as_of": AS_OF,
            "value": None if den == 0 else num / den,
            "numerator": num,
            "denominator": den,
            "target": 1.0,
            "severity": "critical",
            "status": status,
            "offender_count": den - num,
            "slipped_since": since,
            "updated_at": now,
        }
        for (agency, metric), (num, den, status, since) in STATUSES.items()
    ]
    metrics = [
        _metric_row(a, m, PERIOD, AS_OF, n, d, s) for (a, m), (n, d, s, _) in STATUSES.items()
    ]
    metrics += [_metric_row("all", m, PERIOD, AS_OF, n, d, s) for m, (n, d, s) in ROLLUP.items()]
    # an older night and a later one: the report takes the newest up to its date
    metrics.append(_metric_row("all", FILING, PERIOD, date(2024, 5, 19), 1, 15, "slipped"))
    metrics.append(_metric_row("all", FILING, PERIOD, date(2024, 5, 21), 15, 15, "met"))
    metrics.append(
        _metric_row("beta", "enforcement.inspections", PERIOD, AS_OF, 5, 0, "info", "count")
    )
    for month, values in {"2024-04": (0, 2, 2), "2024-05": (1, 7, 1)}.items():
        for agency, num in zip(("alpha", "beta", "gamma"), values, strict=True):
            den = {"alpha": 2, "beta": 8, "gamma": 2}[agency]
            metrics.append(_metric_row(agency, FILING, month, AS_OF, num, den, "slipped"))
        metrics.append(_metric_row("all", FILING, month, AS_OF, sum(values), 12, "slipped"))
    offenders = [
        {
            "agency_id": "alpha",
            "metric": FILING,
            "period": PERIOD,
            "natural_key": k,
            "as_of": AS_OF,
            "reason": "not filed; deadline 2024-04-05 passed",
        }
        for k in HOSTILE_KEYS
    ]
    offenders.append({**offenders[0], "agency_id": "beta", "natural_key": "DOC-B-1"})
    runs = [
        ("alpha", "permits", "succeeded", None),
        ("beta", "permits", "failed", FAILED),
        ("gamma", "docreview", "succeeded", None),
    ]
    with engine.begin() as conn:
        conn.execute(insert(report_target_status), statuses)
        conn.execute(insert(report_metric), metrics)
        conn.execute(insert(report_offender), offenders)
        for n, (agency, source, status, error) in enumerate(runs):
            conn.execute(
                insert(sync_run).values(
                    sync_run_id=f"run-{n}",
                    job_id="job",
                    agency_id=agency,
                    source=source,
                    is_full_refresh=False,
                    started_at=datetime(2024, 5, 20, 1, n),
                    finished_at=datetime(2024, 5, 20, 1, n, 30),
                    status=status,
                    records_read=10 + n,
                    records_loaded=10 + n,
                    records_set_aside=0,
                    error=error,
                )
            )
        stream = {"permits": "permits.applications", "docreview": "docreview.documents"}
        conn.execute(
            insert(sync_state),
            [
                {
                    "agency_id": a,
                    "stream": stream[s],
                    "watermark_at": datetime(2024, 5, 19, n),
                    "updated_at": now,
                }
                for n, (a, s, _, _) in enumerate(runs)
            ],
        )


def city_config(folder: Path) -> Path:
    """The package's config folder with the three agencies and their published figures."""
    config = folder / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, config)
    (config / "agencies.yaml").write_text(AGENCIES, encoding="utf-8")
    (config / "published.yaml").write_text(PUBLISHED, encoding="utf-8")
    return config
