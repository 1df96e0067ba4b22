"""The source systems rulewatch reads: the facts about each that configuration needs.

A source system is declared in two halves. This module holds the half every
layer may need (its name, the environment variables of its URL and
credentials, its API's page-size limit): the settings read the environment
with it, deployments wire its secrets to Prefect blocks, and a 401 names its
variables. The wire half (auth, streams, paginators) is its module in
``rulewatch.sources``, whose :class:`~rulewatch.sources.engine.SourceSpec`
points here. The facts live in this low module rather than in the source
modules because the settings (the lowest layer) must not import the
extraction layer. Variable names are a contract (``interface.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceSystem:
    """One source system's configuration facts."""

    name: str
    url_env: str  # the variable holding the base URL
    credential_envs: Mapping[str, str]  # credential key, as the source's auth reads it -> variable
    max_page_size: int  # the API's own limit on records per page (``source-apis.md``)
    public_credentials: frozenset[str] = field(default=frozenset())  # keys that are not secret

    @property
    def envs(self) -> tuple[str, ...]:
        """Every variable the source needs, URL first."""
        return (self.url_env, *self.credential_envs.values())

    @property
    def secret_envs(self) -> tuple[str, ...]:
        """The credential variables that hold secrets (a user name does not)."""
        return tuple(
            var for key, var in self.credential_envs.items() if key not in self.public_credentials
        )

    @property
    def credential_hint(self) -> str:
        """The variables to check when the source refuses the credentials."""
        return " and ".join(self.credential_envs.values())


PERMITS = SourceSystem(
    name="permits",
    url_env="RULEWATCH_PERMITS_URL",
    credential_envs={"token": "RULEWATCH_PERMITS_TOKEN"},
    max_page_size=500,
)
ENFORCEMENT = SourceSystem(
    name="enforcement",
    url_env="RULEWATCH_ENFORCEMENT_URL",
    credential_envs={"api_key": "RULEWATCH_ENFORCEMENT_API_KEY"},
    max_page_size=200,
)
DOCREVIEW = SourceSystem(
    name="docreview",
    url_env="RULEWATCH_DOCREVIEW_URL",
    credential_envs={
        "user": "RULEWATCH_DOCREVIEW_USER",
        "password": "RULEWATCH_DOCREVIEW_PASSWORD",
    },
    max_page_size=100,
    public_credentials=frozenset({"user"}),
)

SOURCE_SYSTEMS: dict[str, SourceSystem] = {s.name: s for s in (PERMITS, ENFORCEMENT, DOCREVIEW)}
