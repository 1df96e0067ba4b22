"""A city's config for tests: the package config plus an ``agencies.yaml`` of a few agencies.

Agencies here have only the sources' declarations the file requires (nothing is
synced); each has its own alert channel, given by the test (a real webhook).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import Engine, update

from rulewatch.config.agencies import Agencies, load_agencies, settings_for
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, Settings, load_settings
from rulewatch.warehouse.schema import CORE_TABLES, DEFAULT_AGENCY_ID

#: (id, zh name, en name) of the agencies the tests configure, in file order.
AGENCIES = (
    ("science-tech", "台州市科学技术局", "Taizhou Science and Technology Bureau"),
    ("market-regulation", "台州市市场监督管理局", "Taizhou Market Regulation Bureau"),
    ("ecology-environment", "台州市生态环境局", "Taizhou Ecology and Environment Bureau"),
)


def city_config(
    folder: Path,
    channels: Mapping[str, str],
    supervisor_url: str,
    *,
    overrides: Mapping[str, str] = {},  # noqa: B006 - read only
    targets: str | None = None,
    language: str = "en",
    supervisor_language: str = "zh",
) -> Path:
    """A config folder: the package's, ``targets.yaml`` replaced when given, and an
    ``agencies.yaml`` of the agencies of ``channels`` (id -> alert URL) with each one's
    target overrides (id -> YAML mapping text) and the supervisor's channel."""
    target = folder / "config"
    if not target.exists():
        shutil.copytree(PACKAGE_CONFIG_DIR, target)
    if targets is not None:
        (target / "targets.yaml").write_text(targets, encoding="utf-8")
    lines = [
        "supervisor:",
        "  name: {zh: 台州市司法局, en: Taizhou Justice Bureau}",
        f"  alerts: {{urls: ['{supervisor_url}'], language: {supervisor_language}}}",
        "agencies:",
    ]
    for agency_id, zh, en in AGENCIES:
        if agency_id not in channels:
            continue
        lines += [
            f"  - id: {agency_id}",
            f"    name: {{zh: {zh}, en: {en}}}",
            "    sources:",
            f"      docreview: {{base_url: 'http://127.0.0.1:9/{agency_id}', "
            "user_env: DOCS_USER, password_env: DOCS_PASSWORD}",
            f"    alerts: {{urls: ['{channels[agency_id]}'], language: {language}}}",
        ]
        if agency_id in overrides:
            lines += [f"    targets: {overrides[agency_id]}"]
    (target / "agencies.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def city_settings(url: str, data_dir: Path, config_dir: Path) -> tuple[Settings, Agencies]:
    """The deployment's settings and its agencies."""
    settings = load_settings(
        {
            "RULEWATCH_WAREHOUSE_URL": url,
            "RULEWATCH_DATA_DIR": str(data_dir),
            "RULEWATCH_CONFIG_DIR": str(config_dir),
        }
    )
    return settings, load_agencies(settings)


def scoped(settings: Settings, agencies: Agencies, agency_id: str) -> Settings:
    """One agency's settings (``settings_for``)."""
    return settings_for(settings, agencies, agencies.get(agency_id))


def hand_to(engine: Engine, agency_id: str) -> None:
    """Give the core rows written without an agency (``default``) to ``agency_id``: the
    same data loaded for each agency, until the loader writes the agency itself."""
    with engine.begin() as conn:
        for table in CORE_TABLES.values():
            conn.execute(
                update(table)
                .where(table.c.agency_id == DEFAULT_AGENCY_ID)
                .values(agency_id=agency_id)
            )
