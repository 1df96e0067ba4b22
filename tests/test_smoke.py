"""Every module imports and every YAML file in the config folder loads."""

import importlib
import pkgutil

import rulewatch
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, load_settings


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(rulewatch.__path__, "rulewatch.")]
    names = [n for n in names if ".migrations" not in n]
    for name in names:
        importlib.import_module(name)
    assert "rulewatch.cli.main" in names


def test_every_config_file_loads():
    settings = load_settings({})
    files = sorted(p.name for p in PACKAGE_CONFIG_DIR.glob("*.yaml"))
    assert {"sources.yaml", "targets.yaml", "alerts.yaml", "schedule.yaml", "calendar.yaml"} <= set(
        files
    )
    assert settings.targets["docreview.filing_rate"].target == 1.0
    assert str(settings.timezone) == "Asia/Shanghai"
