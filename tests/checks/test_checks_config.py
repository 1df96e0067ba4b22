"""checks.yaml: validated at load, errors name the file and key, severities follow the contract."""

from __future__ import annotations

import pytest
from checks_support import config_copy, make_settings

from rulewatch.checks.config import InSet, check_name, load_checks_config
from rulewatch.config.settings import PACKAGE_CONFIG_DIR, ConfigError, load_settings
from rulewatch.extract import docreview, enforcement, permits

#: Expectations that only re-assert source-apis.md: a record failing one is malformed anyway.
CONTRACT = {
    "permits.applications": {
        "application_id_present", "application_id_unique", "status_known", "permit_type_known",
        "category_known", "received_on_present",
    },
    "enforcement.inspections": {
        "inspection_no_present", "inspection_no_unique", "task_type_known", "outcome_known",
        "credit_risk_level_known", "inspected_on_present", "officers_list_well_formed",
    },
    "enforcement.officers": {
        "officer_id_present", "officer_id_unique", "role_known", "certified_flag_present",
    },
    "docreview.documents": {
        "doc_id_present", "doc_id_unique", "doc_type_known", "status_known", "filing_has_deadline",
    },
}  # fmt: skip
CODE_SETS = {
    ("permits.applications", "status"): permits.STATUSES,
    ("permits.applications", "permit_type"): permits.PERMIT_TYPES,
    ("permits.applications", "category"): permits.CATEGORIES,
    ("enforcement.inspections", "task_type"): enforcement.TASK_TYPES,
    ("enforcement.inspections", "outcome"): enforcement.OUTCOMES,
    ("enforcement.inspections", "credit_risk_level"): enforcement.RISK_LEVELS,
    ("enforcement.officers", "role"): enforcement.ROLES,
    ("docreview.documents", "doc_type"): docreview.DOC_TYPES,
    ("docreview.documents", "status"): docreview.STATUSES,
}


def test_only_contract_expectations_are_critical_by_default():
    """Beyond the contract means warning: kpis must count every well-formed record."""
    checks = load_checks_config(load_settings({}))
    critical = {
        stream: {r.name for r in rules if r.severity == "critical"}
        for stream, rules in checks.suites.items()
    }
    assert critical == CONTRACT
    beyond = [check_name(s, r.name) for s, rules in checks.suites.items() for r in rules]
    assert "permits.applications.decided_not_before_received" in beyond
    assert "docreview.documents.filed_not_before_issued" in beyond
    assert "enforcement.inspections.target_credit_code_18_chars" in beyond


def test_allowed_code_sets_are_the_contract_sets():
    checks = load_checks_config(load_settings({}))
    found = {
        (stream, r.column): set(r.values)
        for stream, rules in checks.suites.items()
        for r in rules
        if isinstance(r, InSet)
    }
    assert found == {k: set(v) for k, v in CODE_SETS.items()}


def test_paths_are_under_the_data_dir_and_a_missing_file_means_the_defaults(tmp_path):  # noqa: ANN001
    config = config_copy(tmp_path)
    (config / "checks.yaml").unlink()
    settings = make_settings("sqlite://", tmp_path / "data", config)
    checks = load_checks_config(settings)
    assert checks.path == PACKAGE_CONFIG_DIR / "checks.yaml"
    assert checks.data_docs_index == tmp_path / "data" / "data_docs" / "index.html"
    assert checks.target_periods == ("year",)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("listed_offenders: 20", "listed_offenders: 20\ncolour: red",
         r"checks.yaml: colour: Extra inputs"),
        ("target_periods: [year]", "target_periods: [decade]", r"checks.yaml: target_periods.0"),
        ("column: employer_credit_code", "column: employer_code",
         r"checks.yaml: suites.permits.applications.8.column: no column 'employer_code'"),
        ("  enforcement.officers:\n", "  enforcement.roster:\n",
         r"checks.yaml: suites: .*unknown stream"),
        ("expect: length", "expect: shorter", r"checks.yaml: suites.permits.applications.8"),
        ("{name: category_known, expect: in_set, column: category, values: [A, B, C], severity: critical}",
         "{name: category_known, expect: in_set, column: category, values: [A], severity: fatal}",
         r"checks.yaml: suites.permits.applications.4.in_set.severity"),
        ("custom_rates: {}", "custom_rates:\n  docreview.filing_rate: {stream: docreview.documents, "
         "date_column: issued_on, population: 'true', passes: 'true', target: 1}",
         r"checks.yaml: custom_rates: .*already metrics"),
        ("custom_rates: {}", "custom_rates:\n  docreview.x_rate: {stream: docreview.documents, "
         "date_column: title, population: 'true', passes: 'true', target: 1}",
         r"checks.yaml: custom_rates.docreview.x_rate.date_column: 'title' is not a date"),
    ],
)  # fmt: skip
def test_a_bad_key_names_the_file_and_the_key(tmp_path, old, new, message):  # noqa: ANN001
    config = config_copy(tmp_path, **{old: new})
    with pytest.raises(ConfigError, match=message):
        load_checks_config(make_settings("sqlite://", tmp_path, config))
