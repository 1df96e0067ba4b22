"""Which agency a report is about (issue 16): the filter its readers apply.

A report reads one agency's rows: the settings of ``config.agencies.settings_for``
carry the agency's id, and every reader of a per-agency table filters by it.
"""

from __future__ import annotations

from rulewatch.config.settings import Settings
from rulewatch.warehouse.schema import DEFAULT_AGENCY_ID


def agency_scope(settings: Settings) -> dict[str, str]:
    """The ``agency_id`` keyword for the metric and check readers of the layers below
    (``compute_metrics``, ``early_warnings``, ``latest_target_statuses``): the settings'
    agency, or nothing for the ``default`` agency, which is those readers' own default.

    Empty for ``default`` so the one agency of a deployment without ``agencies.yaml``
    calls them exactly as before agencies existed.
    """
    if settings.agency_id == DEFAULT_AGENCY_ID:
        return {}
    return {"agency_id": settings.agency_id}
