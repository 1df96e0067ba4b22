"""Shared by the flow tests: the marker of the slow ones and the demo sources."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rulewatch.demo.servers import DemoSources, start_demo_sources


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "prefect_server: starts real Prefect servers and workers (slow; runs in CI)",
    )


@pytest.fixture
def demo() -> Iterator[DemoSources]:
    with start_demo_sources() as handle:
        yield handle
