"""A source system's facts are declared once and every use agrees with the declaration."""

from __future__ import annotations

import pytest
import requests

from rulewatch.config.settings import ConfigError, load_settings
from rulewatch.config.source_systems import SOURCE_SYSTEMS
from rulewatch.extract import SOURCES


def test_every_system_has_one_extract_declaration():
    assert {name: spec.system for name, spec in SOURCES.items()} == SOURCE_SYSTEMS


@pytest.mark.parametrize("name", list(SOURCE_SYSTEMS))
def test_auth_reads_the_declared_credentials(name):
    system = SOURCE_SYSTEMS[name]
    session = requests.Session()
    SOURCES[name].auth(session, {key: f"{key}-value" for key in system.credential_envs})
    sent = f"{session.headers} {session.auth}"
    assert all(f"{key}-value" in sent for key in system.credential_envs)


@pytest.mark.parametrize(
    ("name", "var"), [(s.name, var) for s in SOURCE_SYSTEMS.values() for var in s.envs]
)
def test_each_declared_variable_is_required(name, var):
    env = {v: "http://127.0.0.1:1" for s in SOURCE_SYSTEMS.values() for v in s.envs}
    settings = load_settings({k: v for k, v in env.items() if k != var})
    for other in SOURCE_SYSTEMS:
        if other != name:
            settings.source(other)
    with pytest.raises(ConfigError, match=f"source {name}: environment variable\\(s\\) {var} not"):
        settings.source(name)
