"""Demo source systems for N agencies: a city's departments, each with its own varied data.

Agency 0 is the seed bureau exactly as ``rulewatch demo`` serves it. Every other
agency starts from the same seed world and is changed by deterministic
mutations (a pure function of its id and index): more or fewer applications,
some decided late (``permits.on_time_rate`` slips), some normative documents
left unfiled (``docreview.filing_rate`` slips) or one filed late, and a share
of the synthetic records that sets its size. With two agencies or more, the
last one's enforcement system answers every request with a 5xx: the agency
whose source fails.

One server per kind serves every agency under a path prefix, its base URL
``http://host:port/agencies/<id>`` (:class:`AgencySources`): ``source-apis.md``
takes the base URL from configuration and appends the contract's paths to it,
so a prefix changes nothing on the wire, and three ports serve any N (fifty
agencies are three servers, not 150). It is also how the city meets a shared
provincial system: one host for many departments, which a per-host concurrency
limit must protect. Each agency has its own credentials, so a configuration
that mixes two agencies up is refused with 401, as a real system would.

This module imports nothing of the pipeline (the demo stays an outside server):
:meth:`AgencySources.agencies_yaml` writes the ``agencies.yaml`` that points at
the servers, and :meth:`AgencySources.env` the variables its credentials name.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from types import TracebackType
from typing import Any

import yaml

from rulewatch.demo import data
from rulewatch.demo.servers import (
    CREDENTIALS,
    SYSTEMS,
    Faults,
    Receive,
    Scope,
    Send,
    SourceApp,
    _bind,
    _error,
    _respond,
    _ServerThread,
    _url,
)
from rulewatch.demo.store import DemoWorld

PREFIX = "/agencies/"
FAILING_SYSTEM = "enforcement"  # the system of the agency whose source fails

# Departments of a city government that report on rule-of-law targets (Taizhou's).
DEPARTMENTS: tuple[tuple[str, str, str], ...] = (
    ("science-tech", "台州市科学技术局", "Taizhou Science and Technology Bureau"),
    ("market-regulation", "台州市市场监督管理局", "Taizhou Market Regulation Bureau"),
    ("ecology-environment", "台州市生态环境局", "Taizhou Ecology and Environment Bureau"),
    ("human-resources", "台州市人力资源和社会保障局", "Taizhou Human Resources Bureau"),
    ("transport", "台州市交通运输局", "Taizhou Transport Bureau"),
    ("emergency-management", "台州市应急管理局", "Taizhou Emergency Management Bureau"),
    ("natural-resources", "台州市自然资源和规划局", "Taizhou Natural Resources Bureau"),
    ("housing-construction", "台州市住房和城乡建设局", "Taizhou Housing and Construction Bureau"),
    ("agriculture", "台州市农业农村局", "Taizhou Agriculture Bureau"),
    ("commerce", "台州市商务局", "Taizhou Commerce Bureau"),
    ("health", "台州市卫生健康委员会", "Taizhou Health Commission"),
    ("culture-tourism", "台州市文化和广电旅游体育局", "Taizhou Culture and Tourism Bureau"),
)

SUPERVISOR = ("台州市司法局", "Taizhou Justice Bureau")

_LAST_LATE_RECEIPT = "2023-11-15"  # a late decision on a later receipt could fall in 2024
_SEED_2023_NORMATIVE = ("DOC-2023-001", "DOC-2023-002", "DOC-2023-003")


@dataclass(frozen=True)
class DemoAgency:
    """One agency's demo world: what is changed from the seed, and how its sources behave."""

    index: int
    agency_id: str
    name_zh: str
    name_en: str
    scale: int = 0  # synthetic records (2015-2021), across its three systems
    extra_permits: int = 0  # more 2023 applications, decided on time
    late_permits: int = 0  # 2023 decisions made after the promised days
    unfiled_documents: int = 0  # 2023 normative documents never filed
    files_missed_late: bool = False  # the seed's missed 2024 filing, filed after its deadline
    failing_system: str | None = None  # answers every request with a 5xx

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.agency_id}"

    @property
    def credentials(self) -> dict[str, dict[str, str]]:
        """Its own credentials per system: the demo ones, suffixed with its id."""
        return {
            system: {
                key: value if key == "user" else f"{value}-{self.agency_id}"
                for key, value in creds.items()
            }
            for system, creds in CREDENTIALS.items()
        }


def demo_agencies(count: int, scale: int = 0, failing: bool = True) -> tuple[DemoAgency, ...]:
    """``count`` agencies with varied data; ``scale`` synthetic records shared out unevenly.

    Agency 0 is the seed bureau unchanged (at scale 0 it serves what ``rulewatch
    demo`` serves). From there a cycle of four profiles: late decisions; unfiled
    documents; the missed filing made late; both late decisions and an unfiled
    document. With ``failing`` and two agencies or more, the last one's
    enforcement system fails.
    """
    if count < 1:
        raise ValueError("count: at least one agency")
    if scale < 0:
        raise ValueError("scale must be >= 0")
    weights = [1 + (i * 7) % 5 for i in range(count)]  # sizes 1..5 apart, mixed in order
    shares = [scale * w // sum(weights) for w in weights]
    shares[0] += scale - sum(shares)
    agencies = []
    for i in range(count):
        if i < len(DEPARTMENTS):
            agency_id, zh, en = DEPARTMENTS[i]
        else:
            agency_id, zh, en = (
                f"department-{i + 1:02d}",
                f"台州市示范部门{i + 1}",
                f"Demo Department {i + 1}",
            )
        profile = (i - 1) % 4
        agencies.append(
            DemoAgency(
                index=i,
                agency_id=agency_id,
                name_zh=zh,
                name_en=en,
                scale=shares[i],
                extra_permits=0 if i == 0 else 20 * (i % 5),
                late_permits=0 if i == 0 else (2 + i % 3 if profile in (0, 3) else 0),
                unfiled_documents=0
                if i == 0
                else (1 + i % 2 if profile == 1 else int(profile == 3)),
                files_missed_late=i > 0 and profile == 2,
                failing_system=FAILING_SYSTEM
                if failing and count >= 2 and i == count - 1
                else None,
            )
        )
    return tuple(agencies)


def build_world(agency: DemoAgency) -> DemoWorld:
    """The seed world at the agency's scale, changed as the agency says (deterministically)."""
    world = DemoWorld(scale=agency.scale)
    rng = random.Random(f"rulewatch-demo-agency-{agency.agency_id}")
    permits_2023 = sorted(
        (
            p
            for p in data.current_records("permits.applications")
            if p["application_id"].startswith("WP2023-")
        ),
        key=lambda p: p["application_id"],
    )
    approved = [p for p in permits_2023 if p["status"] == "approved"]
    for n, source in enumerate(
        sorted(rng.sample(approved, agency.extra_permits), key=_id), start=1
    ):
        world.add_record("permits", {**source, "application_id": f"WP2023-9{n:05d}"})
    early = [p for p in approved if _local_day(p["received_at"]) <= _LAST_LATE_RECEIPT]
    for permit in sorted(rng.sample(early, agency.late_permits), key=_id):
        received = datetime.fromisoformat(permit["received_at"]).astimezone(data.SHANGHAI).date()
        decided_day = data.add_workdays(received, permit["promised_days"] + 3)
        decided_s = int(datetime.combine(decided_day, time(10, 30), data.SHANGHAI).timestamp())
        world.mutate("permits", permit["application_id"], decided_at=data.iso(decided_s, False))
    for doc_id in sorted(rng.sample(_SEED_2023_NORMATIVE, agency.unfiled_documents)):
        filing = world.current("docreview", doc_id)["filing"]  # type: ignore[index]
        unfiled = {**filing, "filed": False, "filed_on": None, "accepted": None}
        world.mutate("docreview", doc_id, filing=unfiled)
    if agency.files_missed_late:
        filing = world.current("docreview", data.MISSED_FILING_DOC_ID)["filing"]  # type: ignore[index]
        filed = {**filing, "filed": True, "filed_on": "2024-04-19", "accepted": True}
        world.mutate("docreview", data.MISSED_FILING_DOC_ID, filing=filed)
    return world


def _id(permit: dict[str, Any]) -> str:
    return permit["application_id"]


def _local_day(moment: str) -> str:
    return datetime.fromisoformat(moment).astimezone(data.SHANGHAI).date().isoformat()


class AgencyRouter:
    """One system's server for every agency: ``/agencies/<id>/...`` to that agency's app.

    The child scope keeps the full path and sets ``root_path`` to the prefix (as
    ASGI servers do for a mounted app), so the app routes below it and the links
    it writes keep it.
    """

    def __init__(self, system: str, apps: Mapping[str, SourceApp]) -> None:
        self.system = system
        self.apps = dict(apps)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        agency_id = path[len(PREFIX) :].split("/", 1)[0] if path.startswith(PREFIX) else ""
        app = self.apps.get(agency_id)
        if app is None:
            await _respond(
                send,
                _error(404, f"{self.system}: no agency at {path[:80]!r}; use {PREFIX}<id>/..."),
            )
            return
        await app(
            {**scope, "root_path": scope.get("root_path", "") + PREFIX + agency_id}, receive, send
        )


@dataclass
class AgencySources:
    """Running demo systems for N agencies: base URLs, credentials, worlds, and the config."""

    host: str
    ports: dict[str, int]
    agencies: tuple[DemoAgency, ...]
    worlds: dict[str, DemoWorld]
    apps: dict[str, dict[str, SourceApp]]  # agency id -> system -> app
    request_counts: dict[str, dict[str, int]]  # agency id -> system -> requests
    _servers: list[_ServerThread] = field(repr=False)
    stopped: bool = False

    today = data.DEMO_TODAY

    def agency(self, agency_id: str) -> DemoAgency:
        for agency in self.agencies:
            if agency.agency_id == agency_id:
                return agency
        raise KeyError(f"no demo agency {agency_id!r}")

    def base_url(self, agency_id: str, system: str) -> str:
        """Where one agency's system is: the kind's server, under the agency's prefix."""
        return _url(self.host, self.ports[system]) + self.agency(agency_id).prefix

    def env_names(self, agency_id: str) -> dict[str, dict[str, str]]:
        """The variables holding an agency's credentials: system -> credential key -> name."""
        stem = "DEMO_" + agency_id.upper().replace("-", "_")
        return {
            system: {key: f"{stem}_{system.upper()}_{key.upper()}" for key in creds}
            for system, creds in CREDENTIALS.items()
        }

    def env(self) -> dict[str, str]:
        """Every credential variable that :meth:`agencies_yaml` names, with its value."""
        values: dict[str, str] = {}
        for agency in self.agencies:
            for system, names in self.env_names(agency.agency_id).items():
                for key, name in names.items():
                    values[name] = agency.credentials[system][key]
        return values

    def agencies_config(self) -> dict[str, Any]:
        """The content of ``agencies.yaml`` for these servers (credentials by variable name)."""
        agencies = []
        for agency in self.agencies:
            names = self.env_names(agency.agency_id)
            sources = {
                system: {
                    "base_url": self.base_url(agency.agency_id, system),
                    **{f"{key}_env": name for key, name in names[system].items()},
                }
                for system in SYSTEMS
            }
            agencies.append(
                {
                    "id": agency.agency_id,
                    "name": {"zh": agency.name_zh, "en": agency.name_en},
                    "sources": sources,
                }
            )
        return {
            "supervisor": {"name": {"zh": SUPERVISOR[0], "en": SUPERVISOR[1]}},
            "agencies": agencies,
        }

    def agencies_yaml(self) -> str:
        """:meth:`agencies_config` as YAML text, Chinese names readable."""
        return yaml.safe_dump(self.agencies_config(), allow_unicode=True, sort_keys=False)

    def single_env(self, agency_id: str) -> dict[str, str]:
        """The ``RULEWATCH_*`` variables of a one-agency run against this agency's systems.

        A warehouse loaded this way is what a city warehouse must agree with, agency by agency.
        """
        agency = self.agency(agency_id)
        return {
            "RULEWATCH_PERMITS_URL": self.base_url(agency_id, "permits"),
            "RULEWATCH_PERMITS_TOKEN": agency.credentials["permits"]["token"],
            "RULEWATCH_ENFORCEMENT_URL": self.base_url(agency_id, "enforcement"),
            "RULEWATCH_ENFORCEMENT_API_KEY": agency.credentials["enforcement"]["api_key"],
            "RULEWATCH_DOCREVIEW_URL": self.base_url(agency_id, "docreview"),
            "RULEWATCH_DOCREVIEW_USER": agency.credentials["docreview"]["user"],
            "RULEWATCH_DOCREVIEW_PASSWORD": agency.credentials["docreview"]["password"],
        }

    def stop(self) -> None:
        """Stop the servers, close their ports and join their threads."""
        if self.stopped:
            return
        self.stopped = True
        for server in self._servers:
            server.signal_stop()
        for server in self._servers:
            server.join(5.0)

    def __enter__(self) -> AgencySources:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_agency_sources(
    agencies: Sequence[DemoAgency], host: str = "127.0.0.1", ports: Sequence[int] = (0, 0, 0)
) -> AgencySources:
    """Start permits, enforcement and docreview for every agency (port 0: any free one)."""
    if len(ports) != 3:
        raise ValueError("ports: one per system (permits, enforcement, docreview)")
    ids = [a.agency_id for a in agencies]
    if len(set(ids)) != len(ids):
        raise ValueError(f"agency ids must be unique: {ids}")
    worlds = {a.agency_id: build_world(a) for a in agencies}
    counts = {a.agency_id: dict.fromkeys(SYSTEMS, 0) for a in agencies}
    apps = {
        a.agency_id: {
            system: SourceApp(
                system,
                worlds[a.agency_id],
                Faults(rate_5xx=1.0, seed=a.index) if system == a.failing_system else None,
                counts[a.agency_id],
                a.credentials[system],
            )
            for system in SYSTEMS
        }
        for a in agencies
    }
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sockets.append(_bind(host, port))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    servers = [
        _ServerThread(system, AgencyRouter(system, {i: apps[i][system] for i in ids}), sock)  # type: ignore[arg-type]
        for system, sock in zip(SYSTEMS, sockets, strict=True)
    ]
    handle = AgencySources(
        host=host,
        ports={s: sock.getsockname()[1] for s, sock in zip(SYSTEMS, sockets, strict=True)},
        agencies=tuple(agencies),
        worlds=worlds,
        apps=apps,
        request_counts=counts,
        _servers=servers,
    )
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_started(10.0)
    except BaseException:
        handle.stop()
        raise
    return handle
