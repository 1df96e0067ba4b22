"""``config/checks.yaml``: the data-quality suites, their severities and where Data Docs go.

Validated like every config file (pydantic, ``extra="forbid"``); an error names
the file and the dotted key. Columns are checked against the warehouse schema
at load, so a typo fails before any sync starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy import Date, Table

from rulewatch.common.metric_ids import METRICS
from rulewatch.config.settings import (
    PACKAGE_CONFIG_DIR,
    ConfigError,
    Settings,
    TargetOptions,
    _read_yaml,
    _Strict,
)
from rulewatch.warehouse.schema import CORE_TABLES

CHECKS_FILE = "checks.yaml"
Severity = Literal["critical", "warning"]
PeriodKind = Literal["year", "quarter", "month"]


class _Rule(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)
    severity: Severity = "warning"
    description: str | None = None


class NotNull(_Rule):
    expect: Literal["not_null"]
    column: str


class Unique(_Rule):
    expect: Literal["unique"]
    column: str


class InSet(_Rule):
    expect: Literal["in_set"]
    column: str
    values: list[str] = Field(min_length=1)


class Length(_Rule):
    expect: Literal["length"]
    column: str
    value: int = Field(gt=0)


class Between(_Rule):
    expect: Literal["between"]
    column: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Between:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class Ordered(_Rule):
    expect: Literal["ordered"]
    earlier: str
    later: str


class Sql(_Rule):
    expect: Literal["sql"]
    unexpected: str = Field(min_length=1)  # SQL condition over the stream's columns
    reason: str = Field(min_length=1)


Rule = Annotated[
    NotNull | Unique | InSet | Length | Between | Ordered | Sql, Field(discriminator="expect")
]


class CustomRate(_Strict):
    """A rate over an existing core table, checked like a target (not part of ``kpis``)."""

    stream: str
    date_column: str
    population: str = Field(min_length=1)
    passes: str = Field(min_length=1)
    reason: str = "does not pass"
    target: float = Field(ge=0, le=1)
    severity: Severity = "warning"
    periods: list[PeriodKind] | None = None


class ChecksFile(_Strict):
    data_docs_dir: str = "data_docs"
    validations_dir: str = "gx/validations"
    data_docs_keep_days: int = Field(default=90, ge=0)
    target_periods: list[PeriodKind] = Field(default_factory=lambda: ["year"], min_length=1)
    listed_offenders: int = Field(default=20, ge=1)
    suites: dict[str, list[Rule]] = Field(default_factory=dict)
    custom_rates: dict[str, CustomRate] = Field(default_factory=dict)

    @field_validator("suites")
    @classmethod
    def _known_streams(cls, value: dict[str, list[Rule]]) -> dict[str, list[Rule]]:
        unknown = sorted(set(value) - set(CORE_TABLES))
        if unknown:
            raise ValueError(f"unknown stream(s) {unknown}; known: {list(CORE_TABLES)}")
        for stream, rules in value.items():
            names = [r.name for r in rules]
            doubled = sorted({n for n in names if names.count(n) > 1})
            if doubled:
                raise ValueError(f"{stream}: expectation name(s) {doubled} used twice")
        return value

    @field_validator("custom_rates")
    @classmethod
    def _new_metric_ids(cls, value: dict[str, CustomRate]) -> dict[str, CustomRate]:
        clash = sorted(set(value) & set(METRICS))
        if clash:
            raise ValueError(
                f"{clash}: already metrics of interface.md; set targets in targets.yaml"
            )
        return value


@dataclass(frozen=True)
class ChecksConfig:
    """checks.yaml, validated, with its paths resolved."""

    path: Path
    data_docs_dir: Path
    validations_dir: Path
    data_docs_keep_days: int
    target_periods: tuple[str, ...]
    listed_offenders: int
    suites: dict[str, list[Rule]]
    custom_rates: dict[str, CustomRate]

    @property
    def data_docs_index(self) -> Path:
        return self.data_docs_dir / "index.html"

    def custom_targets(self) -> dict[str, TargetOptions]:
        """Custom rates as target options (target and severity)."""
        return {
            name: TargetOptions(target=rate.target, severity=rate.severity)
            for name, rate in self.custom_rates.items()
        }


def check_name(stream: str, rule_name: str) -> str:
    """The stored name of a data-quality expectation: ``<stream>.<name>``."""
    return f"{stream}.{rule_name}"


def rule_columns(rule: Rule) -> list[tuple[str, str]]:
    """(field, column) pairs a rule reads, for validation against the schema."""
    if isinstance(rule, Ordered):
        return [("earlier", rule.earlier), ("later", rule.later)]
    if isinstance(rule, Sql):
        return []
    return [("column", rule.column)]


def _check_columns(path: Path, parsed: ChecksFile) -> None:
    for stream, rules in parsed.suites.items():
        table: Table = CORE_TABLES[stream]
        for i, rule in enumerate(rules):
            for field, column in rule_columns(rule):
                if column not in table.c:
                    raise ConfigError(
                        f"{path}: suites.{stream}.{i}.{field}: no column {column!r} in "
                        f"{table.name} (columns: {', '.join(table.c.keys())})"
                    )
    for name, rate in parsed.custom_rates.items():
        if rate.stream not in CORE_TABLES:
            raise ConfigError(
                f"{path}: custom_rates.{name}.stream: unknown stream {rate.stream!r}; "
                f"known: {list(CORE_TABLES)}"
            )
        table = CORE_TABLES[rate.stream]
        column = table.c.get(rate.date_column)
        if column is None or not isinstance(column.type, Date):
            dates = [c.name for c in table.c if isinstance(c.type, Date)]
            raise ConfigError(
                f"{path}: custom_rates.{name}.date_column: {rate.date_column!r} is not a date "
                f"column of {table.name} (dates: {', '.join(dates)})"
            )


def load_checks_config(settings: Settings) -> ChecksConfig:
    """checks.yaml of the config folder (the package's when the folder has none)."""
    path = settings.config_dir / CHECKS_FILE
    if not path.exists():
        path = PACKAGE_CONFIG_DIR / CHECKS_FILE
    parsed = _read_yaml(path, ChecksFile)
    assert isinstance(parsed, ChecksFile)
    _check_columns(path, parsed)

    def under_output_dir(value: str) -> Path:
        # the agency's folder (agencies.yaml), else the data folder: its Data Docs,
        # validation results and checks page are its own
        p = Path(value).expanduser()
        return p if p.is_absolute() else settings.output_dir / p

    return ChecksConfig(
        path=path,
        data_docs_dir=under_output_dir(parsed.data_docs_dir),
        validations_dir=under_output_dir(parsed.validations_dir),
        data_docs_keep_days=parsed.data_docs_keep_days,
        target_periods=tuple(dict.fromkeys(parsed.target_periods)),
        listed_offenders=parsed.listed_offenders,
        suites=parsed.suites,
        custom_rates=parsed.custom_rates,
    )
