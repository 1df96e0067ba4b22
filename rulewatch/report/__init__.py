"""Reports that feed downstream: report tables, exports, the HTML report, reconciliation.

- :mod:`rulewatch.report.tables` — the report tables of the warehouse (revision 0004)
  and their nightly refresh;
- :mod:`rulewatch.report.published` — ``config/published.yaml`` reconciled with the
  warehouse, with the arithmetic of every mismatch;
- :mod:`rulewatch.report.data` — everything one period's report shows, read once;
- :mod:`rulewatch.report.charts`, :mod:`~rulewatch.report.html`,
  :mod:`~rulewatch.report.exports`, :mod:`~rulewatch.report.draft` — its renderings;
- :mod:`rulewatch.report.write` — ``rulewatch report``: all of them into one folder.
"""
