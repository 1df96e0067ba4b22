"""agencies.yaml: valid and invalid files as tables; one agency without the file; credentials."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from rulewatch.config.agencies import (
    DEFAULT_AGENCY_ID,
    credential_keys,
    load_agencies,
    settings_for,
    source_endpoint,
)
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, ConfigError, load_settings

SUPERVISOR = """\
supervisor:
  name: {zh: 台州市司法局, en: Taizhou Justice Bureau}
  alerts: {urls_env: [CITY_ALERT_URLS], language: zh}
"""

AGENCY = """\
  - id: {id}
    name: {{zh: 台州市科学技术局, en: Taizhou Science and Technology Bureau}}
    sources:
      permits: {{base_url: "http://127.0.0.1:1/a/{id}", token_env: PERMITS_TOKEN}}
      docreview: {{base_url_env: DOCS_URL, user_env: DOCS_USER, password_block: docs-password}}
    alerts: {{urls: ["json://127.0.0.1:2/alerts"], urls_env: [SCITECH_ALERTS], language: en}}
"""


@pytest.fixture
def config_dir(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(PACKAGE_CONFIG_DIR, target)
    return target


def _load(config_dir, text: str, **env: str):
    (config_dir / "agencies.yaml").write_text(text, encoding="utf-8")
    settings = load_settings({"RULEWATCH_CONFIG_DIR": str(config_dir), **env})
    return settings, load_agencies(settings)


def _file(*agencies: str, head: str = SUPERVISOR) -> str:
    return head + "agencies:\n" + "".join(agencies)


VALID = [
    pytest.param(_file(AGENCY.format(id="science-tech")), ["science-tech"], id="one"),
    pytest.param(
        _file(AGENCY.format(id="a1"), AGENCY.format(id="market-regulation")),
        ["a1", "market-regulation"],
        id="two in file order",
    ),
    pytest.param(
        _file(
            "  - id: env-bureau\n"
            "    name: {zh: 生态环境局, en: Ecology Bureau}\n"
            "    sources:\n"
            "      enforcement: {base_url: 'https://prov.example/enf', api_key_block: env-key}\n"
        ),
        ["env-bureau"],
        id="only one source, no alert channel",
    ),
]


@pytest.mark.parametrize(("text", "ids"), VALID)
def test_valid_files_load(config_dir, text, ids):
    _, agencies = _load(config_dir, text)
    assert list(agencies.ids) == ids
    assert (
        agencies.supervisor is not None and agencies.supervisor.name_en == "Taizhou Justice Bureau"
    )
    assert [a.agency_id for a in agencies.select("all")] == ids
    assert agencies.select(ids[-1])[0].agency_id == ids[-1]


BAD_AGENCY = "  - id: ok\n    name: {zh: 甲, en: A}\n    sources:\n      permits: {base_url: 'http://h/p', token_env: T}\n"

INVALID = [
    pytest.param(
        _file(AGENCY.format(id="a"), AGENCY.format(id="b"), AGENCY.format(id="a")),
        r"agencies\.yaml: agencies\[2\]\.id: 'a' is already the id of agencies\[0\]",
        id="duplicate id",
    ),
    pytest.param(
        _file(AGENCY.format(id="Science_Tech")),
        r"agencies\[0\]\.id: 'Science_Tech' is not a slug",
        id="id not a slug",
    ),
    pytest.param(
        _file(AGENCY.format(id="all")),
        r"agencies\[0\]\.id: 'all' is reserved",
        id="id reserved",
    ),
    pytest.param(
        _file(BAD_AGENCY, BAD_AGENCY.replace("id: ok", "id: ok2").replace("permits:", "licences:")),
        r"agencies\[1\]\.sources\.licences: unknown source 'licences'; known: permits, "
        r"enforcement, docreview",
        id="unknown source",
    ),
    pytest.param(
        _file(
            BAD_AGENCY,
            BAD_AGENCY.replace("id: ok", "id: ok2").replace(
                "token_env: T", "token_env: T, token_block: t"
            ),
        ),
        r"agencies\.yaml: agencies\[1\]\.sources\.permits\.token_block: give token_env or "
        r"token_block, not both",
        id="env and block",
    ),
    pytest.param(
        _file(BAD_AGENCY.replace(", token_env: T", "")),
        r"agencies\[0\]\.sources\.permits\.token_env: token_env or token_block is required",
        id="credential missing",
    ),
    pytest.param(
        _file(
            BAD_AGENCY.replace("base_url: 'http://h/p'", "base_url_env: U, base_url: 'http://h'")
        ),
        r"agencies\[0\]\.sources\.permits\.base_url_env: give base_url or base_url_env, not both",
        id="url and url variable",
    ),
    pytest.param(
        _file(BAD_AGENCY.replace("token_env: T", "token: secret-in-yaml")),
        r"agencies\[0\]\.sources\.permits\.token: Extra inputs are not permitted",
        id="secret written in the file",
    ),
    pytest.param(
        _file(BAD_AGENCY.replace("'http://h/p'", "'http://user:pw@h/p'")),
        r"agencies\[0\]\.sources\.permits\.base_url: a URL must not carry credentials",
        id="credentials in the URL",
    ),
    pytest.param(
        _file(BAD_AGENCY.replace("'http://h/p'", "'ftp://h/p'")),
        r"agencies\[0\]\.sources\.permits\.base_url: 'ftp://h/p' is not an http\(s\) URL",
        id="not http",
    ),
    pytest.param(
        _file(BAD_AGENCY.replace("token_env: T", "token_env: 'MY-TOKEN'")),
        r"agencies\[0\]\.sources\.permits\.token_env: 'MY-TOKEN' is not an environment variable",
        id="bad variable name",
    ),
    pytest.param(
        _file(BAD_AGENCY.replace("token_env: T", "token_block: My_Block")),
        r"agencies\[0\]\.sources\.permits\.token_block: 'My_Block' is not a Prefect block name",
        id="bad block name",
    ),
    pytest.param(
        _file("  - id: ok\n    name: {zh: 甲, en: A}\n    sources: {}\n"),
        r"agencies\[0\]\.sources: an agency needs at least one of",
        id="no source",
    ),
    pytest.param(
        _file(BAD_AGENCY.replace("{zh: 甲, en: A}", "{zh: 甲}")),
        r"agencies\[0\]\.name\.en: Field required",
        id="english name missing",
    ),
    pytest.param(
        _file(BAD_AGENCY + "    alerts: {language: fr}\n"),
        r"agencies\[0\]\.alerts\.language: Input should be 'zh' or 'en'",
        id="language",
    ),
    pytest.param(
        _file(BAD_AGENCY + "    alerts: {urls: [127.0.0.1]}\n"),
        r"agencies\[0\]\.alerts\.urls\[0\]: not an Apprise URL",
        id="alert URL without scheme",
    ),
    pytest.param(
        _file(BAD_AGENCY, head=""),
        r"agencies\.yaml: supervisor: Field required",
        id="no supervisor",
    ),
    pytest.param(
        SUPERVISOR + "agencies: []\n",
        r"agencies\.yaml: agencies: List should have at least 1",
        id="empty",
    ),
    pytest.param("agencies: [\n", r"agencies\.yaml: not valid YAML", id="not YAML"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_files_name_file_and_key(config_dir, text, message):
    with pytest.raises(ConfigError, match=message):
        _load(config_dir, text)


def test_without_the_file_one_agency_is_todays_settings(config_dir):
    env = {
        "RULEWATCH_CONFIG_DIR": str(config_dir),
        "RULEWATCH_PERMITS_URL": "http://127.0.0.1:9/permits/",
        "RULEWATCH_PERMITS_TOKEN": "tok",
        "RULEWATCH_ALERT_URLS": "json://127.0.0.1:3/a, json://127.0.0.1:3/b",
    }
    settings = load_settings(env)
    agencies = load_agencies(settings)
    assert agencies.ids == (DEFAULT_AGENCY_ID,) and agencies.supervisor is None
    (agency,) = agencies.select(None)
    assert agencies.select("all") == (agency,)
    assert source_endpoint(settings, agency, "permits") == settings.source("permits")
    assert agency.alerts.resolve(settings.env) == settings.alert_urls
    assert agency.alerts.language == settings.alerts.language
    # a variable not set: the message every command has always given
    with pytest.raises(ConfigError) as by_agency:
        source_endpoint(settings, agency, "enforcement")
    with pytest.raises(ConfigError) as by_settings:
        settings.source("enforcement")
    assert str(by_agency.value) == str(by_settings.value)


def test_unknown_agency_names_the_flag_and_the_known_ids(config_dir):
    _, agencies = _load(config_dir, _file(AGENCY.format(id="a"), AGENCY.format(id="b")))
    with pytest.raises(ConfigError, match=r"--agency 'c': no such agency; known: a, b"):
        agencies.select("c")


def test_credentials_from_variables_and_blocks_only_when_read(config_dir):
    settings, agencies = _load(
        config_dir,
        _file(AGENCY.format(id="science-tech")),
        PERMITS_TOKEN="p-token",
        DOCS_URL="http://127.0.0.1:8/docs/",
        DOCS_USER="reader",
    )
    (agency,) = agencies
    read: list[str] = []

    def blocks(name: str) -> str:
        read.append(name)
        return {"docs-password": "pw"}[name]

    permits = source_endpoint(settings, agency, "permits", blocks)
    assert (permits.base_url, permits.credentials) == (
        "http://127.0.0.1:1/a/science-tech",
        {"token": "p-token"},
    )
    assert read == []  # no block named, none read
    docs = source_endpoint(settings, agency, "docreview", blocks)
    assert docs.base_url == "http://127.0.0.1:8/docs"
    assert docs.credentials == {"user": "reader", "password": "pw"}
    assert docs.options == settings.sources.docreview and read == ["docs-password"]
    with pytest.raises(
        ConfigError,
        match=r"agency science-tech: has no source 'enforcement' \(it has permits, docreview\)",
    ):
        source_endpoint(settings, agency, "enforcement", blocks)


def test_missing_variable_and_unreadable_block_name_the_key(config_dir):
    settings, agencies = _load(
        config_dir, _file(AGENCY.format(id="science-tech")), DOCS_URL="http://h"
    )
    (agency,) = agencies
    with pytest.raises(
        ConfigError,
        match=r"agencies\.yaml: agencies\[0\]\.sources\.permits: environment variable\(s\) "
        r"PERMITS_TOKEN not set",
    ):
        source_endpoint(settings, agency, "permits")
    settings = load_settings({**settings.env, "DOCS_USER": "u"})

    def no_blocks(name: str) -> str:
        raise ConfigError(f"Prefect Secret block {name!r}: not found")

    with pytest.raises(
        ConfigError,
        match=r"agencies\[0\]\.sources\.docreview\.password_block: Prefect Secret block "
        r"'docs-password': not found",
    ):
        source_endpoint(settings, agency, "docreview", no_blocks)


def test_alert_channels_resolve_urls_from_the_file_and_variables(config_dir):
    settings, agencies = _load(
        config_dir,
        _file(AGENCY.format(id="science-tech")),
        SCITECH_ALERTS="json://127.0.0.1:4/x json://127.0.0.1:2/alerts",
    )
    (agency,) = agencies
    assert agency.alerts.language == "en"
    assert agency.alerts.resolve(settings.env) == (
        "json://127.0.0.1:2/alerts",
        "json://127.0.0.1:4/x",
    )
    supervisor = agencies.supervisor
    assert supervisor is not None and supervisor.alerts.language == "zh"
    with pytest.raises(
        ConfigError,
        match=r"agencies\.yaml: supervisor\.alerts: environment variable\(s\) CITY_ALERT_URLS",
    ):
        supervisor.alerts.resolve(settings.env)


def test_language_defaults_to_alerts_yaml(config_dir):
    (config_dir / "alerts.yaml").write_text("language: en\n", encoding="utf-8")
    text = _file(BAD_AGENCY)
    _, agencies = _load(config_dir, text)
    assert agencies.get("ok").alerts.language == "en"


@pytest.mark.parametrize("source", ["permits", "enforcement", "docreview"])
def test_each_source_takes_its_own_credentials(source):
    assert (
        credential_keys(source)
        == {
            "permits": ("token",),
            "enforcement": ("api_key",),
            "docreview": ("user", "password"),
        }[source]
    )


def test_a_city_example_loads(config_dir):
    """Blocks and variables mixed, two sources on one shared provincial host."""
    text = textwrap.dedent(
        """\
        supervisor:
          name: {zh: 台州市司法局, en: Taizhou Justice Bureau}
          alerts: {urls_env: [RULEWATCH_CITY_ALERT_URLS]}
        agencies:
          - id: science-tech
            name: {zh: 台州市科学技术局, en: Taizhou Science and Technology Bureau}
            sources:
              permits: {base_url: "https://permits.example.gov.cn", token_block: scitech-permits-token}
              enforcement: {base_url: "https://prov.example.gov.cn/enf", api_key_env: SCITECH_ENF_KEY}
              docreview: {base_url: "https://prov.example.gov.cn/docs", user_env: SCITECH_DOCS_USER,
                          password_block: scitech-docs-password}
            alerts: {urls_env: [SCITECH_ALERT_URLS], language: zh}
        """
    )
    _, agencies = _load(config_dir, text)
    assert agencies.get("science-tech").sources["permits"].credentials["token"].block == (
        "scitech-permits-token"
    )


@pytest.mark.prefect_server
def test_secret_blocks_are_read_from_a_real_prefect_server(config_dir, tmp_path):
    """A block's text as stored (a token that looks like a number stays text), and a
    block that does not exist named by its key; Prefect is imported only for this."""
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from rulewatch.flows.serve import start_local_server

    home = tmp_path / "prefect-home"
    server = start_local_server(
        home, env={"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    )
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url, PREFECT_HOME: str(home)}):
            Secret(value="012345").save("docs-password")
            settings, agencies = _load(
                config_dir,
                _file(AGENCY.format(id="science-tech")),
                DOCS_URL="http://h",
                DOCS_USER="u",
            )
            (agency,) = agencies
            assert (
                source_endpoint(settings, agency, "docreview").credentials["password"] == "012345"
            )
            text = _file(AGENCY.format(id="science-tech").replace("docs-password", "no-such-block"))
            settings, agencies = _load(config_dir, text, DOCS_URL="http://h", DOCS_USER="u")
            with pytest.raises(
                ConfigError,
                match=r"agencies\[0\]\.sources\.docreview\.password_block: Prefect Secret block "
                r"'no-such-block': ValueError",
            ):
                source_endpoint(settings, agencies.get("science-tech"), "docreview")
    finally:
        server.stop()


def test_settings_for_scopes_an_agency_and_its_target_overrides(config_dir):
    agency = AGENCY.format(id="science-tech") + (
        "    targets:\n      docreview.filing_rate: {target: 0.9, severity: warning}\n"
    )
    env = {"PERMITS_TOKEN": "t", "SCITECH_ALERTS": "json://127.0.0.1:3/x"}
    settings, agencies = _load(config_dir, _file(agency), **env)
    scoped = settings_for(settings, agencies, agencies.get("science-tech"))
    assert scoped.agency_id == "science-tech"
    assert scoped.output_dir == settings.data_dir / "agencies" / "science-tech"
    assert scoped.targets["docreview.filing_rate"].target == 0.9
    assert scoped.targets["docreview.filing_rate"].severity == "warning"
    assert scoped.targets["permits.on_time_rate"] == settings.targets["permits.on_time_rate"]
    assert scoped.alert_urls == ("json://127.0.0.1:2/alerts", "json://127.0.0.1:3/x")
    assert scoped.alerts.language == "en"
    assert scoped.source("permits").base_url == "http://127.0.0.1:1/a/science-tech"
    assert scoped.source("permits").credentials == {"token": "t"}
    with pytest.raises(ConfigError, match="has no source 'enforcement'"):
        scoped.source("enforcement")


def test_settings_for_without_the_file_is_the_settings(config_dir):
    settings = load_settings({"RULEWATCH_CONFIG_DIR": str(config_dir)})
    agencies = load_agencies(settings)
    scoped = settings_for(settings, agencies, agencies.get(DEFAULT_AGENCY_ID))
    assert scoped is settings and scoped.agency_id == DEFAULT_AGENCY_ID
    assert scoped.output_dir == settings.data_dir


def test_an_override_of_a_target_not_in_targets_yaml_names_the_key(config_dir):
    agency = AGENCY.format(id="a1") + "    targets:\n      nonsense_rate: {target: 0.5}\n"
    with pytest.raises(ConfigError, match=r"agencies\[0\]\.targets\.nonsense_rate"):
        _load(config_dir, _file(agency))
