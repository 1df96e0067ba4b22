"""The agencies one deployment watches: ``agencies.yaml`` in the config folder, or one agency.

A city's rule-of-law office watches many departments (issue 16): each has its own
source systems, credentials and alert recipients, and the office has its own
channels for the nightly digest. ``agencies.yaml`` lists them; without the file
there is exactly one agency, :data:`DEFAULT_AGENCY_ID`, built from the settings
as every command reads them today (``RULEWATCH_*_URL`` and credentials,
``RULEWATCH_ALERT_URLS`` or ``alerts.yaml``), so code that iterates
:class:`Agencies` behaves as before when nobody configured any.

The file holds no secret: a credential is the name of an environment variable
(``token_env``) or of a Prefect Secret block (``token_block``), resolved only
when a source is about to be read (:func:`source_endpoint`). An error names the
file and the dotted key (``agencies.yaml: agencies[3].sources.permits.token_env``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from rulewatch.config.settings import (
    SOURCE_NAMES,
    ConfigError,
    Settings,
    SourceEndpoint,
    TargetOptions,
    safe_load_yaml,
    split_urls,
)
from rulewatch.config.source_systems import SOURCE_SYSTEMS

AGENCIES_FILE = "agencies.yaml"
DEFAULT_AGENCY_ID = "default"
ALL_AGENCIES = "all"  # what ``--agency all`` selects

_SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_SLUG_MAX = 40  # an agency id is a key column and part of Prefect run and limit names
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # Prefect block names: lower case and dashes


def credential_keys(source: str) -> tuple[str, ...]:
    """The credentials a source's auth reads (``token``; ``api_key``; ``user``, ``password``)."""
    return tuple(_credential_envs(source))


def _credential_envs(source: str) -> Mapping[str, str]:
    # The source systems' variable names are declared once, in config/source_systems.py.
    return SOURCE_SYSTEMS[source].credential_envs


def _url_env(source: str) -> str:
    return SOURCE_SYSTEMS[source].url_env


# --- the file, as pydantic models -----------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NamesModel(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class AlertsModel(_Strict):
    """Channels: Apprise URLs without secrets, or variables holding URLs (space/comma separated)."""

    urls: list[str] = []
    urls_env: list[str] = []
    language: Literal["zh", "en"] | None = None  # None: alerts.yaml's language


def _source_model(source: str) -> type[BaseModel]:
    """``base_url`` or ``base_url_env``, and per credential ``<key>_env`` or ``<key>_block``."""
    fields: dict[str, Any] = {"base_url": (str | None, None), "base_url_env": (str | None, None)}
    for key in credential_keys(source):
        fields[f"{key}_env"] = (str | None, None)
        fields[f"{key}_block"] = (str | None, None)
    return create_model(f"{source.capitalize()}SourceModel", __base__=_Strict, **fields)


SourcesModel = create_model(
    "SourcesModel",
    __base__=_Strict,
    **{name: (_source_model(name) | None, None) for name in SOURCE_NAMES},
)


class TargetOverrideModel(_Strict):
    """An agency's own threshold or severity for a target of targets.yaml."""

    target: float | None = Field(default=None, ge=0, le=1)
    severity: Literal["critical", "warning"] | None = None


class AgencyModel(_Strict):
    id: str
    name: NamesModel
    sources: SourcesModel  # type: ignore[valid-type]
    alerts: AlertsModel = AlertsModel()
    targets: dict[str, TargetOverrideModel] = {}


class SupervisorModel(_Strict):
    name: NamesModel
    alerts: AlertsModel = AlertsModel()


class AgenciesFile(_Strict):
    supervisor: SupervisorModel
    agencies: list[AgencyModel] = Field(min_length=1)


# --- what the rest of rulewatch uses ---------------------------------------------------------


@dataclass(frozen=True)
class SecretRef:
    """Where one credential lives: an environment variable or a Prefect Secret block."""

    env: str | None = None
    block: str | None = None


@dataclass(frozen=True)
class AgencySource:
    """One source system of one agency: where it is and where its credentials are."""

    name: str
    base_url: str | None  # as written in the file
    base_url_env: str | None  # or the variable holding it
    credentials: Mapping[str, SecretRef]  # credential key -> where it lives
    where: str  # the config key an error names


@dataclass(frozen=True)
class AlertChannels:
    """Alert recipients and their language; URLs resolved from the environment on demand."""

    urls: tuple[str, ...]
    urls_env: tuple[str, ...]
    language: Literal["zh", "en"]
    where: str

    def resolve(self, env: Mapping[str, str]) -> tuple[str, ...]:
        """Every URL, the file's first, then each variable's; a variable not set is a ConfigError."""
        missing = [name for name in self.urls_env if not env.get(name)]
        if missing:
            raise ConfigError(f"{self.where}: environment variable(s) {', '.join(missing)} not set")
        found = list(self.urls)
        for name in self.urls_env:
            found += split_urls(env[name])
        return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class Agency:
    """A department whose rule-of-law targets are watched: its sources and alert channels."""

    agency_id: str
    name_zh: str
    name_en: str
    sources: Mapping[str, AgencySource]  # only the sources the agency has
    alerts: AlertChannels
    targets: Mapping[str, TargetOptions] = None  # type: ignore[assignment]  # None: targets.yaml

    def name(self, language: str) -> str:
        return self.name_zh if language == "zh" else self.name_en

    def has_source(self, source: str) -> bool:
        return source in self.sources


@dataclass(frozen=True)
class Supervisor:
    """The office that watches every agency and receives the nightly digest."""

    name_zh: str
    name_en: str
    alerts: AlertChannels


@dataclass(frozen=True)
class Agencies:
    """The agencies of this deployment, in file order; iterate them uniformly."""

    agencies: tuple[Agency, ...]
    supervisor: Supervisor | None  # None without agencies.yaml: nobody above the one agency
    path: Path | None  # the file read, None when built from the settings

    def __iter__(self) -> Iterator[Agency]:
        return iter(self.agencies)

    def __len__(self) -> int:
        return len(self.agencies)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(a.agency_id for a in self.agencies)

    def get(self, agency_id: str) -> Agency:
        """The agency with this id; a ConfigError naming ``--agency`` and the known ids."""
        for agency in self.agencies:
            if agency.agency_id == agency_id:
                return agency
        raise ConfigError(f"--agency {agency_id!r}: no such agency; known: {', '.join(self.ids)}")

    def select(self, agency_id: str | None) -> tuple[Agency, ...]:
        """What ``--agency`` chose: every agency for ``all`` (or none given), else the one."""
        if agency_id is None or agency_id == ALL_AGENCIES:
            return self.agencies
        return (self.get(agency_id),)


def load_agencies(settings: Settings) -> Agencies:
    """``agencies.yaml`` of the settings' config folder, or the one agency of the settings."""
    path = settings.config_dir / AGENCIES_FILE
    if not path.exists():
        return default_agencies(settings)
    try:
        raw = safe_load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_agencies(raw, settings, path)


def default_agencies(settings: Settings) -> Agencies:
    """One agency from today's settings: every source by its ``RULEWATCH_*`` variables."""
    sources = {
        name: AgencySource(
            name=name,
            base_url=None,
            base_url_env=_url_env(name),
            credentials={key: SecretRef(env=var) for key, var in _credential_envs(name).items()},
            where=f"source {name}",  # the message of a missing variable stays as it was
        )
        for name in SOURCE_NAMES
    }
    from_env = bool(split_urls(settings.env.get("RULEWATCH_ALERT_URLS", "")))
    alerts = AlertChannels(
        urls=settings.alert_urls,
        urls_env=(),
        language=settings.alerts.language,
        where="RULEWATCH_ALERT_URLS"
        if from_env
        else f"{settings.config_dir / 'alerts.yaml'}: urls",
    )
    agency = Agency(DEFAULT_AGENCY_ID, "本单位", "This agency", sources, alerts)
    return Agencies((agency,), None, None)


def parse_agencies(raw: Any, settings: Settings, path: Path) -> Agencies:
    """Validate the file's content: shape by pydantic, then ids, names and either-or keys."""
    try:
        model = AgenciesFile.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    language = settings.alerts.language
    supervisor = Supervisor(
        model.supervisor.name.zh,
        model.supervisor.name.en,
        _channels(model.supervisor.alerts, f"{path}: supervisor.alerts", language),
    )
    seen: dict[str, int] = {}
    agencies = []
    for index, item in enumerate(model.agencies):
        where = f"{path}: agencies[{index}]"
        if len(item.id) > _SLUG_MAX or not _SLUG.match(item.id):
            raise ConfigError(
                f"{where}.id: {item.id!r} is not a slug (lower-case letters, digits and single "
                f"hyphens, starting with a letter, at most {_SLUG_MAX} characters)"
            )
        if item.id == ALL_AGENCIES:
            raise ConfigError(f"{where}.id: {item.id!r} is reserved (--agency all)")
        if item.id in seen:
            raise ConfigError(
                f"{where}.id: {item.id!r} is already the id of agencies[{seen[item.id]}]"
            )
        seen[item.id] = index
        sources = {
            name: _source(name, getattr(item.sources, name), f"{where}.sources.{name}")
            for name in SOURCE_NAMES
            if getattr(item.sources, name) is not None
        }
        if not sources:
            raise ConfigError(
                f"{where}.sources: an agency needs at least one of {', '.join(SOURCE_NAMES)}"
            )
        alerts = _channels(item.alerts, f"{where}.alerts", language)
        targets = _targets(item.targets, settings, f"{where}.targets")
        agencies.append(Agency(item.id, item.name.zh, item.name.en, sources, alerts, targets))
    return Agencies(tuple(agencies), supervisor, path)


def _targets(
    overrides: Mapping[str, TargetOverrideModel], settings: Settings, where: str
) -> Mapping[str, TargetOptions]:
    """targets.yaml with the agency's thresholds and severities over it."""
    targets = dict(settings.targets)
    for metric, override in overrides.items():
        if metric not in targets:
            known = ", ".join(targets)
            raise ConfigError(f"{where}.{metric}: not a target of targets.yaml (known: {known})")
        changed = override.model_dump(exclude_none=True)
        targets[metric] = targets[metric].model_copy(update=changed)
    return targets


def settings_for(settings: Settings, agencies: Agencies, agency: Agency) -> Settings:
    """The settings one agency's work reads: its id, sources, targets, alert channels
    and folder. Without ``agencies.yaml`` the settings themselves, unchanged."""
    if agencies.path is None:
        return settings
    alerts = settings.alerts.model_copy(update={"language": agency.alerts.language})
    return replace(
        settings,
        agency_id=agency.agency_id,
        agency_dir=settings.data_dir / "agencies" / agency.agency_id,
        targets=dict(agency.targets) if agency.targets is not None else settings.targets,
        alerts=alerts,
        alert_urls=agency.alerts.resolve(settings.env),
        agency_source=lambda name: source_endpoint(settings, agency, name),
    )


def _source(name: str, model: BaseModel, where: str) -> AgencySource:
    url, url_env = model.base_url, model.base_url_env  # type: ignore[attr-defined]
    _one_of(where, "base_url", url, "base_url_env", url_env)
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{where}.base_url: {url!r} is not an http(s) URL")
    if url is not None and re.match(r"^https?://[^/@\s]*@", url):
        raise ConfigError(
            f"{where}.base_url: a URL must not carry credentials; use the *_env or *_block keys"
        )
    if url_env is not None:
        _env_name(f"{where}.base_url_env", url_env)
    credentials = {}
    for key in credential_keys(name):
        env, block = getattr(model, f"{key}_env"), getattr(model, f"{key}_block")
        _one_of(where, f"{key}_env", env, f"{key}_block", block)
        if env is not None:
            _env_name(f"{where}.{key}_env", env)
        elif not _BLOCK_NAME.match(block):
            raise ConfigError(
                f"{where}.{key}_block: {block!r} is not a Prefect block name "
                "(lower-case letters, digits and hyphens)"
            )
        credentials[key] = SecretRef(env=env, block=block)
    return AgencySource(name, None if url is None else url.rstrip("/"), url_env, credentials, where)


def _channels(model: AlertsModel, where: str, default_language: str) -> AlertChannels:
    for number, url in enumerate(model.urls):
        if "://" not in url:
            raise ConfigError(f"{where}.urls[{number}]: not an Apprise URL (scheme://...)")
    for number, name in enumerate(model.urls_env):
        _env_name(f"{where}.urls_env[{number}]", name)
    language = model.language or default_language
    return AlertChannels(tuple(model.urls), tuple(model.urls_env), language, where)  # type: ignore[arg-type]


def _one_of(where: str, a: str, a_value: object, b: str, b_value: object) -> None:
    if a_value is not None and b_value is not None:
        raise ConfigError(f"{where}.{b}: give {a} or {b}, not both")
    if a_value is None and b_value is None:
        raise ConfigError(f"{where}.{a}: {a} or {b} is required")


def _env_name(where: str, name: str) -> None:
    if not _ENV_NAME.match(name):
        raise ConfigError(f"{where}: {name!r} is not an environment variable name")


def _describe(exc: ValidationError) -> str:
    """The first error as ``dotted.key[3].path: why``, an unknown source named as one."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    where = _dotted(loc) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden" and len(loc) >= 2 and loc[-2] == "sources":
        message = f"unknown source {loc[-1]!r}; known: {', '.join(SOURCE_NAMES)}"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def _dotted(loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# --- credentials, resolved when a source is read -----------------------------------------


SecretReader = Callable[[str], str]


def read_secret_block(name: str) -> str:
    """The value of a Prefect Secret block (Prefect imported only here, when one is needed).

    ``Secret.get()`` would decode a value that parses as JSON (a token ``"12345"``
    becomes an int); the stored text is what a credential is, so it is read as stored.
    """
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
    # Prefect raises ValueError for a block not found, httpx or runtime errors for an API
    # it cannot reach: either way the run cannot have its credential.
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"Prefect Secret block {name!r}: {type(exc).__name__}: {exc}") from None
    value = block.value.get_secret_value()
    if not isinstance(value, str) or not value:
        raise ConfigError(f"Prefect Secret block {name!r}: holds no text value")
    return value


def source_endpoint(
    settings: Settings,
    agency: Agency,
    source: str,
    read_block: SecretReader = read_secret_block,
) -> SourceEndpoint:
    """Where one agency's source lives and its credentials, as the extract layer takes them.

    A source the agency does not have, a variable not set or a block that cannot
    be read is a ConfigError naming the key; for the one agency of the settings
    the message is the one every command has always given.
    """
    found = agency.sources.get(source)
    if found is None:
        has = ", ".join(agency.sources)
        raise ConfigError(f"agency {agency.agency_id}: has no source {source!r} (it has {has})")
    env = settings.env
    needed = [found.base_url_env] if found.base_url_env else []
    needed += [ref.env for ref in found.credentials.values() if ref.env]
    missing = [name for name in needed if not env.get(name)]
    if missing:
        raise ConfigError(f"{found.where}: environment variable(s) {', '.join(missing)} not set")
    credentials = {}
    for key, ref in found.credentials.items():
        if ref.env:
            credentials[key] = env[ref.env]
        else:
            try:
                credentials[key] = read_block(ref.block)  # type: ignore[arg-type]
            except ConfigError as exc:
                raise ConfigError(f"{found.where}.{key}_block: {exc}") from None
    base_url = found.base_url or env[found.base_url_env].rstrip("/")  # type: ignore[index]
    return SourceEndpoint(
        name=source,
        base_url=base_url,
        credentials=credentials,
        options=getattr(settings.sources, source),
    )
