"""Compliance and data-quality checks, run by Great Expectations 1.x in the warehouse.

- :mod:`rulewatch.checks.config` — ``config/checks.yaml``: suites, severities, Data Docs folder;
- :mod:`rulewatch.checks.quality` — data-quality suites over the rows of a sync;
  critical failures are set aside;
- :mod:`rulewatch.checks.targets` — every target checked over its record-level population;
- :mod:`rulewatch.checks.results` — results in the warehouse and the read API
  (:func:`~rulewatch.checks.results.latest_target_statuses`, ``target_history``,
  ``offenders_of``);
- :mod:`rulewatch.checks.gx_runner` — the only module that talks to Great Expectations;
- :mod:`rulewatch.checks.display` — the terminal and Prefect artifacts.
"""
