"""Configuration: YAML files in the config folder plus the environment.

Only this module reads the environment. Every YAML file is validated by a
pydantic model with ``extra="forbid"``; an error names the file and the dotted
key at fault. Secrets are never read from YAML, only from the variables named
in ``interface.md``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)

from rulewatch.common.metric_ids import RATE_METRICS
from rulewatch.config.source_systems import SOURCE_SYSTEMS

PACKAGE_CONFIG_DIR = Path(__file__).parent
SOURCE_NAMES = tuple(SOURCE_SYSTEMS)


class ConfigError(Exception):
    """Bad or missing configuration; the message names the file, key or variable."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceOptions(_Strict):
    page_size: int = Field(gt=0)
    timeout_seconds: float = Field(default=30, gt=0)  # connect, and the longest silence
    max_retries: int = Field(default=5, ge=0, le=20)
    backoff_factor: float = Field(default=0.5, ge=0)
    max_retry_after_seconds: float = Field(default=60, ge=0)
    # Wall-clock bounds and sanity ceilings: see "Limits" in the README.
    request_deadline_seconds: float = Field(default=60, gt=0)  # one try, whole answer
    retry_deadline_seconds: float = Field(default=120, gt=0)  # all tries of one request
    max_pages: int = Field(default=100_000, gt=0)  # per stream and sync
    max_page_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    max_json_depth: int = Field(default=64, ge=4, le=512)


# sources.yaml: one required section per declared source system
SourcesFile = create_model(
    "SourcesFile", __base__=_Strict, **{name: (SourceOptions, ...) for name in SOURCE_SYSTEMS}
)


class TargetOptions(_Strict):
    target: float = Field(ge=0, le=1)
    severity: Literal["critical", "warning"] = "critical"


class TargetsFile(_Strict):
    targets: dict[str, TargetOptions]

    @field_validator("targets")
    @classmethod
    def _known_metrics(cls, value: dict[str, TargetOptions]) -> dict[str, TargetOptions]:
        unknown = sorted(set(value) - set(RATE_METRICS))
        if unknown:
            raise ValueError(f"unknown rate metric(s) {unknown}; known: {list(RATE_METRICS)}")
        return value


class AlertsFile(_Strict):
    urls: list[str] = []
    reminder_interval_days: int = Field(default=7, ge=1)
    early_warning_days: int = Field(default=7, ge=0)
    language: Literal["zh", "en"] = "zh"
    stale_after_hours: float = Field(default=36, gt=0)


class TimeoutsSection(_Strict):
    """Time bounds of the nightly job, so one stuck step cannot hold the warehouse all night."""

    warehouse_connect_seconds: float = Field(default=15, gt=0)
    warehouse_statement_seconds: float = Field(default=1800, ge=0)  # PostgreSQL; 0: none
    sqlite_busy_seconds: float = Field(default=60, gt=0)
    source_task_seconds: float = Field(default=7200, gt=0)
    step_task_seconds: float = Field(default=1800, gt=0)
    flow_seconds: float = Field(default=14400, gt=0)


class RetriesSection(_Strict):
    """Prefect task retries: a source task that failed (after its request retries) runs again."""

    source_task: int = Field(default=1, ge=0, le=10)
    source_task_delay_seconds: float = Field(default=30, ge=0)


class ConcurrencySection(_Strict):
    """How many agencies' nightly runs may be at work at once (issue 16): per source host
    (a shared provincial system must not be hammered) and per warehouse."""

    agencies_per_source_host: int = Field(default=4, ge=1)
    agencies_per_warehouse: int = Field(default=8, ge=1)


class ScheduleFile(_Strict):
    cron: str = "0 2 * * *"
    timezone: str = "Asia/Shanghai"
    timeouts: TimeoutsSection = TimeoutsSection()
    retries: RetriesSection = RetriesSection()
    concurrency: ConcurrencySection = ConcurrencySection()


class CalendarFile(_Strict):
    """Local overrides of the official working-day calendar (``rulewatch.common.workdays``)."""

    timezone: str = "Asia/Shanghai"
    holidays: list[date] = []
    makeup_workdays: list[date] = []

    @field_validator("makeup_workdays")
    @classmethod
    def _not_both(cls, value: list[date], info: ValidationInfo) -> list[date]:
        both = sorted(set(value) & set(info.data.get("holidays") or ()))
        if both:
            days = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"{days} listed under both holidays and makeup_workdays")
        return value


@dataclass(frozen=True)
class SourceEndpoint:
    """Where a source lives and how to authenticate, from the environment."""

    name: str
    base_url: str
    credentials: dict[str, str]
    options: SourceOptions


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, validated."""

    config_dir: Path
    data_dir: Path
    warehouse_url: str
    timezone: ZoneInfo
    calendar: CalendarFile
    sources: SourcesFile
    targets: dict[str, TargetOptions]
    alerts: AlertsFile
    alert_urls: tuple[str, ...]
    schedule: ScheduleFile
    env: dict[str, str]
    #: The agency these settings are for (``agencies.settings_for``): every per-agency row
    #: read or written carries it. ``default`` without ``agencies.yaml``.
    agency_id: str = "default"
    #: Where this agency's own files go (reports, Data Docs); None: the data folder.
    agency_dir: Path | None = None
    #: The agency's endpoints (``agencies.source_endpoint``); None: the RULEWATCH_* variables.
    agency_source: Callable[[str], SourceEndpoint] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def output_dir(self) -> Path:
        """The folder for this agency's files: the data folder, or the agency's under it."""
        return self.agency_dir or self.data_dir

    def source(self, name: str) -> SourceEndpoint:
        """The endpoint of one source; a missing URL or credential is a ConfigError."""
        if name not in SOURCE_NAMES:
            raise ConfigError(f"--source {name!r}: unknown source; choose from {SOURCE_NAMES}")
        if self.agency_source is not None:
            return self.agency_source(name)
        system = SOURCE_SYSTEMS[name]
        missing = [v for v in system.envs if not self.env.get(v)]
        if missing:
            names = ", ".join(missing)
            raise ConfigError(f"source {name}: environment variable(s) {names} not set")
        creds = {key: self.env[var] for key, var in system.credential_envs.items()}
        return SourceEndpoint(
            name=name,
            base_url=self.env[system.url_env].rstrip("/"),
            credentials=creds,
            options=getattr(self.sources, name),
        )

    def pii_key(self) -> tuple[bytes, str]:
        """The pseudonymisation key and where it came from.

        ``RULEWATCH_PII_KEY`` wins; without it a random key is made once and
        kept in the data folder, so pseudonyms stay stable between runs.
        """
        key = self.env.get("RULEWATCH_PII_KEY")
        if key:
            return key.encode("utf-8"), "RULEWATCH_PII_KEY"
        path = self.data_dir / "pii.key"
        if not path.exists():
            _make_key_file(path)
        key = path.read_text(encoding="utf-8").strip()
        if not key:  # never used as a key: every pseudonym would be made with none
            raise ConfigError(
                f"{path}: the pseudonymisation key file is empty (a full disk or a crash "
                "while it was made?): restore it from a backup, or delete it to make a new "
                "key (pseudonyms of rows loaded with the old one will then differ), or set "
                "RULEWATCH_PII_KEY"
            )
        return key.encode("utf-8"), str(path)


def _make_key_file(path: Path) -> None:
    """A new random key at ``path``, whole or not at all, readable by this user only.

    Written to a file of its own first, then linked into place: a full disk or a
    kill leaves no empty or half key behind, and of two runs making it at the same
    moment (the first sync's sources, in threads) the first one's is everybody's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, made = tempfile.mkstemp(prefix=".pii-key-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # made meanwhile: that key it is
            os.link(made, path)
    finally:
        os.unlink(made)


#: PyYAML's safe loader on libyaml's C parser where PyYAML was built with it: the same
#: constructors (the same values, the same errors for a bad date), parsing about 8x
#: faster. Every step of a night reads the config folder again (about 10 ms of Python
#: parsing for the settings and checks.yaml, per step).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_yaml(text: str) -> object:
    """``yaml.safe_load`` of ``text``, on the C parser when PyYAML has it."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader


def _read_yaml(path: Path, model: type[BaseModel]) -> BaseModel:
    try:
        raw = safe_load_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except ValueError:  # PyYAML builds dates while parsing: 2023-02-30 raises here
        raise ConfigError(f"{path}: {_bad_yaml_value(path)}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{path}: {where}: {first['msg']}{more}") from None


def _bad_yaml_value(path: Path) -> str:
    """Which scalar PyYAML could not build (a date such as 2023-02-30), as ``key: why``."""
    from yaml.constructor import SafeConstructor
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    constructor = SafeConstructor()

    def walk(node: yaml.Node, where: list[str]) -> str | None:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                found = walk(value, [*where, str(key.value)])
                if found:
                    return found
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                found = walk(item, [*where, str(i)])
                if found:
                    return found
        elif isinstance(node, ScalarNode):
            try:
                constructor.construct_object(node, deep=True)
            except ValueError as exc:
                key = ".".join(where) or "(top level)"
                line = node.start_mark.line + 1
                return f"{key}: {node.value!r} is not valid ({exc}; line {line})"
        return None

    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return (walk(root, []) if root is not None else None) or "a value is not valid"


def validate_cron(settings: Settings) -> None:
    """``schedule.yaml``'s cron as Prefect's scheduler reads it; a ConfigError naming the key."""
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        validate_cron_string(settings.schedule.cron)
    except ValueError as exc:
        raise ConfigError(f"{settings.config_dir / 'schedule.yaml'}: cron: {exc}") from None


def validate_alert_urls(settings: Settings) -> None:
    """Every alert channel must be an Apprise URL, checked at start-up rather than at 02:00.

    The message names where the URL came from and its position, never the URL
    itself (it may hold a password or token).
    """
    if not settings.alert_urls:
        return  # nothing to check: no need to import Apprise (0.1 s of every sync)
    import logging

    import apprise

    quiet = logging.getLogger("apprise")  # its own reasons would echo the URL
    from_env = bool(split_urls(settings.env.get("RULEWATCH_ALERT_URLS", "")))
    where = "RULEWATCH_ALERT_URLS" if from_env else f"{settings.config_dir / 'alerts.yaml'}: urls"
    for number, url in enumerate(settings.alert_urls, start=1):
        was, quiet.disabled = quiet.disabled, True
        try:
            valid = apprise.Apprise().add(url)
        finally:
            quiet.disabled = was
        if not valid:
            scheme = url.split("://", 1)[0] if "://" in url else "(no scheme)"
            raise ConfigError(
                f"{where}: entry {number} (scheme {scheme!r}) is not a valid Apprise URL "
                "(see https://github.com/caronc/apprise/wiki)"
            )


def _zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: unknown timezone {name!r}") from None


def default_data_dir(env: dict[str, str]) -> Path:
    """Where local files live: ``RULEWATCH_DATA_DIR`` or ``~/.local/share/rulewatch``."""
    if env.get("RULEWATCH_DATA_DIR"):
        return Path(env["RULEWATCH_DATA_DIR"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rulewatch"


def split_urls(text: str) -> tuple[str, ...]:
    """Apprise URLs separated by spaces or commas."""
    return tuple(u for u in text.replace(",", " ").split() if u)


LOG_FORMATS = ("text", "json", "plain")


def log_format(env: dict[str, str] | None = None) -> str:
    """``RULEWATCH_LOG_FORMAT``: ``text`` (default), ``json`` or ``plain``."""
    value = (os.environ if env is None else env).get("RULEWATCH_LOG_FORMAT", "") or "text"
    if value.lower() not in LOG_FORMATS:
        raise ConfigError(f"RULEWATCH_LOG_FORMAT={value!r}: choose from {', '.join(LOG_FORMATS)}")
    return value.lower()


def log_level(env: dict[str, str] | None = None) -> str | None:
    """``RULEWATCH_LOG_LEVEL`` for rulewatch's own loggers (DEBUG also shows tracebacks)."""
    value = (os.environ if env is None else env).get("RULEWATCH_LOG_LEVEL", "").upper()
    if value and value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"RULEWATCH_LOG_LEVEL={value!r}: choose from DEBUG, INFO, WARNING, ERROR")
    return value or None


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read and validate the config folder and the environment."""
    env = dict(os.environ if env is None else env)
    config_dir = Path(env.get("RULEWATCH_CONFIG_DIR") or PACKAGE_CONFIG_DIR)
    if not config_dir.is_dir():
        raise ConfigError(f"RULEWATCH_CONFIG_DIR={config_dir}: not a folder")
    calendar = _read_yaml(config_dir / "calendar.yaml", CalendarFile)
    sources = _read_yaml(config_dir / "sources.yaml", SourcesFile)
    targets = _read_yaml(config_dir / "targets.yaml", TargetsFile)
    alerts = _read_yaml(config_dir / "alerts.yaml", AlertsFile)
    schedule = _read_yaml(config_dir / "schedule.yaml", ScheduleFile)
    timezone = _zone(calendar.timezone, f"{config_dir / 'calendar.yaml'}: timezone")
    _zone(schedule.timezone, f"{config_dir / 'schedule.yaml'}: timezone")
    for name, system in SOURCE_SYSTEMS.items():
        size = getattr(sources, name).page_size
        if size > system.max_page_size:
            raise ConfigError(
                f"{config_dir / 'sources.yaml'}: {name}.page_size: {size} is above the "
                f"source's limit of {system.max_page_size}"
            )
    data_dir = default_data_dir(env)
    warehouse_url = env.get("RULEWATCH_WAREHOUSE_URL") or f"sqlite:///{data_dir / 'warehouse.db'}"
    env_urls = split_urls(env.get("RULEWATCH_ALERT_URLS", ""))
    return Settings(
        config_dir=config_dir,
        data_dir=data_dir,
        warehouse_url=warehouse_url,
        timezone=timezone,
        calendar=calendar,
        sources=sources,
        targets=targets.targets,
        alerts=alerts,
        alert_urls=env_urls or tuple(alerts.urls),
        schedule=schedule,
        env=env,
    )
