"""Three demo agencies' data in one warehouse, and each in a warehouse of its own.

Each agency (``rulewatch/demo/agencies.py``: the seed bureau, one deciding late,
one filing late; the same natural keys in each, different sizes) is synced from
its real HTTP demo systems into a one-agency SQLite warehouse: what a city
warehouse must agree with, agency by agency. :func:`copy_agencies` writes those
core rows into a city warehouse under each agency's id.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select

from rulewatch.common.workdays import calendar_of
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, Settings, load_settings
from rulewatch.demo.agencies import demo_agencies, start_agency_sources
from rulewatch.warehouse.db import open_warehouse
from rulewatch.warehouse.schema import CORE_TABLES
from rulewatch.warehouse.sync import sync_source

SOURCES = ("permits", "enforcement", "docreview")
PII_KEY = "city-test-key"
BASE = load_settings({})


@dataclass(frozen=True)
class CityData:
    agency_ids: tuple[str, ...]
    singles: dict[str, str]  # agency id -> the URL of its one-agency warehouse
    config_dir: Path  # the package config plus the agencies' agencies.yaml
    names: dict[str, tuple[str, str]]  # agency id -> (zh, en)


def _settings(env: dict[str, str]) -> Settings:
    settings = load_settings({**env, "RULEWATCH_PII_KEY": PII_KEY})
    for name in SOURCES:
        options = getattr(settings.sources, name)
        object.__setattr__(options, "max_retries", 1)
        object.__setattr__(options, "backoff_factor", 0.0)
    return settings


@contextmanager
def city_data(folder: Path) -> Iterator[CityData]:
    """Sync three demo agencies, each into its own SQLite warehouse under ``folder``."""
    first, late, _, filed_late = demo_agencies(4, failing=False)
    with start_agency_sources([first, late, filed_late]) as city:
        singles: dict[str, str] = {}
        for agency in city.agencies:
            url = f"sqlite:///{folder / (agency.agency_id + '.db')}"
            settings = _settings(
                {
                    **city.single_env(agency.agency_id),
                    "RULEWATCH_WAREHOUSE_URL": url,
                    "RULEWATCH_DATA_DIR": str(folder / agency.agency_id),
                }
            )
            engine = open_warehouse(url, calendar_of(settings))
            for source in SOURCES:
                sync_source(engine, settings, source)
            engine.dispose()
            singles[agency.agency_id] = url
        config = folder / "config"
        shutil.copytree(PACKAGE_CONFIG_DIR, config)
        (config / "agencies.yaml").write_text(city.agencies_yaml(), encoding="utf-8")
        yield CityData(
            tuple(singles),
            singles,
            config,
            {a.agency_id: (a.name_zh, a.name_en) for a in city.agencies},
        )


def copy_agencies(singles: dict[str, str], target: Engine) -> None:
    """Every agency's core rows, as its own warehouse holds them, into ``target`` under its id.

    Written directly: the loader writes the agency explicitly once the "wh" slice lands;
    a second agency loaded today would land in ``default`` beside the first."""
    for agency_id, url in singles.items():
        source = open_warehouse(url, calendar_of(BASE))
        with source.connect() as read, target.begin() as write:
            for table in CORE_TABLES.values():
                rows = [
                    dict(r, agency_id=agency_id) for r in read.execute(select(table)).mappings()
                ]
                if rows:
                    write.execute(insert(table), rows)
        source.dispose()


def city_warehouse(url: str, singles: dict[str, str]) -> None:
    """A migrated warehouse at ``url`` holding every agency's core rows."""
    engine = open_warehouse(url, calendar_of(BASE))
    copy_agencies(singles, engine)
    engine.dispose()
