"""Config is checked at load; an error names the file and the dotted key."""

import shutil

import pytest

from rulewatch.config.settings import PACKAGE_CONFIG_DIR, ConfigError, load_settings


@pytest.fixture
def config_dir(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, target)
    return target


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        (
            "sources.yaml",
            "permits: {page_size: 10, colour: red}\nenforcement: {page_size: 5}\n"
            "docreview: {page_size: 5}\n",
            r"sources.yaml: permits.colour: Extra inputs",
        ),
        (
            "sources.yaml",
            "permits: {page_size: 900}\nenforcement: {page_size: 5}\ndocreview: {page_size: 5}\n",
            r"sources.yaml: permits.page_size: 900 is above",
        ),
        (
            "targets.yaml",
            "targets:\n  docreview.filing_rat: {target: 1.0}\n",
            r"targets.yaml: targets: .*unknown rate metric",
        ),
        (
            "targets.yaml",
            "targets:\n  docreview.filing_rate: {target: 95}\n",
            r"targets.yaml: targets.docreview.filing_rate.target",
        ),
        ("calendar.yaml", "timezone: Mars/Olympus\n", r"calendar.yaml: timezone: unknown timezone"),
        ("alerts.yaml", "language: fr\n", r"alerts.yaml: language"),
        ("schedule.yaml", "cron: [\n", r"schedule.yaml: not valid YAML"),
        ("schedule.yaml", "timeouts: {flow_seconds: 0}\n", r"schedule.yaml: timeouts.flow_seconds"),
        (
            "calendar.yaml",
            "holidays:\n  - 2023-02-30\n",
            r"calendar.yaml: holidays.0: '2023-02-30'",
        ),
    ],
)
def test_bad_config_names_file_and_key(config_dir, file, text, message):
    (config_dir / file).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings({"RULEWATCH_CONFIG_DIR": str(config_dir)})


def test_missing_credential_names_the_variable():
    settings = load_settings({"RULEWATCH_PERMITS_URL": "http://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="permits: environment variable.*RULEWATCH_PERMITS_TOKEN"):
        settings.source("permits")


def test_environment_beats_config_for_alert_urls(config_dir):
    (config_dir / "alerts.yaml").write_text("urls: ['json://example.invalid/a']\n")
    env = {"RULEWATCH_CONFIG_DIR": str(config_dir)}
    assert load_settings(env).alert_urls == ("json://example.invalid/a",)
    env["RULEWATCH_ALERT_URLS"] = "json://127.0.0.1/x, mailto://127.0.0.1/y"
    assert load_settings(env).alert_urls == ("json://127.0.0.1/x", "mailto://127.0.0.1/y")


def test_pii_key_from_environment_or_kept_file(tmp_path):
    assert load_settings({"RULEWATCH_PII_KEY": "k"}).pii_key() == (b"k", "RULEWATCH_PII_KEY")
    s = load_settings({"RULEWATCH_DATA_DIR": str(tmp_path)})
    first = s.pii_key()
    assert first == s.pii_key() and first[1] == str(tmp_path / "pii.key")
    assert len(first[0]) == 64 and (tmp_path / "pii.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["pii.key"]  # its first file is gone


def test_runs_making_the_key_at_once_share_one(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    s = load_settings({"RULEWATCH_DATA_DIR": str(tmp_path)})
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: s.pii_key(), range(32)))
    assert len(keys) == 1 and [p.name for p in tmp_path.iterdir()] == ["pii.key"]


def test_an_empty_key_file_is_never_used_as_a_key(tmp_path):
    (tmp_path / "pii.key").write_text("\n")  # a full disk or a kill while it was made
    s = load_settings({"RULEWATCH_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"pii\.key: the pseudonymisation key file is empty"):
        s.pii_key()
