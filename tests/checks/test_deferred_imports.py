"""Deferred packages: imported at once, run on first use, in an eager import's order."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rulewatch.checks.deferred_imports import defer, is_deferred, undefer

PROBE = "rw_deferred_probe"


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[list[str]]:
    """A package whose modules log when they run (in a log module that is not deferred)."""
    (tmp_path / "rw_probe_log.py").write_text("ran = []\n")
    package = tmp_path / PROBE
    package.mkdir()
    (package / "__init__.py").write_text(
        "import rw_probe_log\nrw_probe_log.ran.append(__name__)\nANSWER = 42\n"
    )
    (package / "sub.py").write_text(
        "import rw_probe_log\nrw_probe_log.ran.append(__name__)\nVALUE = 'sub'\n"
    )
    (package / "broken.py").write_text("raise RuntimeError('broken at run time')\n")
    sys.path.insert(0, str(tmp_path))
    finder = defer([PROBE])
    try:
        yield importlib.import_module("rw_probe_log").ran
    finally:
        undefer(finder)
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.partition(".")[0] in (PROBE, "rw_probe_log")]:
            del sys.modules[name]


def test_a_deferred_module_runs_on_first_attribute_access(probe: list[str]) -> None:
    import rw_deferred_probe  # noqa: PLC0415 - the import under test

    assert is_deferred(rw_deferred_probe) and probe == []
    assert rw_deferred_probe.__spec__.name == PROBE and rw_deferred_probe.__path__  # metadata
    import rw_deferred_probe as again  # noqa: PLC0415 - a second import finds it deferred

    assert again is rw_deferred_probe and probe == []
    assert rw_deferred_probe.ANSWER == 42
    assert not is_deferred(rw_deferred_probe) and probe == [PROBE]


def test_a_submodule_runs_after_its_package(probe: list[str]) -> None:
    import rw_deferred_probe.sub  # noqa: PLC0415 - the import under test

    assert is_deferred(sys.modules[PROBE]) and is_deferred(sys.modules[f"{PROBE}.sub"])
    from rw_deferred_probe.sub import VALUE  # noqa: PLC0415 - runs the submodule

    assert VALUE == "sub"
    assert probe == [PROBE, f"{PROBE}.sub"]  # the package first, as an eager import runs them
    assert rw_deferred_probe.ANSWER == 42 and rw_deferred_probe.sub.VALUE == "sub"


def test_from_a_package_import_a_submodule_defers_the_submodule(probe: list[str]) -> None:
    from rw_deferred_probe import sub  # noqa: PLC0415 - the import under test

    assert probe == [PROBE]  # the package runs: the import asks it for ``sub``
    assert is_deferred(sub) and sys.modules[PROBE].sub is sub
    assert sub.VALUE == "sub" and probe == [PROBE, f"{PROBE}.sub"]


def test_an_error_in_a_deferred_module_surfaces_at_first_use(probe: list[str]) -> None:
    from rw_deferred_probe import broken  # noqa: PLC0415 - the import under test

    with pytest.raises(RuntimeError, match="broken at run time"):
        _ = broken.anything
    assert f"{PROBE}.broken" not in sys.modules  # as a failed import leaves it
    assert probe == [PROBE]


def test_other_packages_import_as_usual(probe: list[str]) -> None:
    import rw_probe_log  # noqa: PLC0415 - imported by the fixture, not deferred

    assert not is_deferred(rw_probe_log)


def test_gx_imported_with_its_unused_packages_deferred_still_uses_them() -> None:
    """In a process of its own (as the recorder's): SciPy's statistics and Altair are
    deferred by GX's import, then work when used."""
    script = textwrap.dedent(
        """
        import sys
        from rulewatch.checks.deferred_imports import defer, is_deferred
        from rulewatch.checks.gx_runner import UNUSED_BY_RECORDING
        defer(UNUSED_BY_RECORDING)
        import great_expectations
        assert is_deferred(sys.modules["scipy.stats"]) and is_deferred(sys.modules["altair"])
        from scipy import stats
        import altair as alt
        assert stats.norm.cdf(0.0) == 0.5 and alt.Chart.__name__ == "Chart"
        assert not is_deferred(stats) and not is_deferred(alt)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
