"""The warehouse tables, in three layers with one job each.

- **landed** (``landed_record``): every record version as received, append-only,
  tagged with the sync run that brought it; the audit trail. Personal data is
  scrubbed before landing (no names; passport numbers only as pseudonyms).
- **set aside** (``quarantined_record``): records that broke the contract, with
  the reason and the (scrubbed) payload.
- **core** (``permit_application``, ``inspection``, ``officer``, ``document``):
  typed current state, one row per natural key; the newest change wins whatever
  the arrival order. Deletions are soft (``is_deleted``, ``is_active``) so the
  history stays. A key whose newest version was malformed is kept with
  ``is_set_aside`` and counts nowhere until a good version replaces it.
- **operations** (``sync_run``, ``sync_state``, ``calendar_day``, ``warehouse_meta``).

Timestamps (``*_at``) are naive UTC; dates (``*_on``) are local dates in the
configured timezone. Schema changes go through Alembic (``migrations/``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)


def now_utc() -> datetime:
    """Naive UTC, the warehouse's timestamp form (every ``_at`` column)."""
    return datetime.now(UTC).replace(tzinfo=None)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

RUN_ID = String(36)
#: The agency a row belongs to (revision 0009): a slug of ``agencies.yaml`` (at most 40
#: characters), ``default`` without the file, ``all`` for the city rollup's rows.
AGENCY_ID = String(64)
DEFAULT_AGENCY_ID = "default"


def _agency(*, primary_key: bool = False) -> Column:
    """The agency key column; ``default`` fills it in a warehouse made before agencies."""
    return Column(
        "agency_id",
        AGENCY_ID,
        primary_key=primary_key,
        nullable=False,
        server_default=DEFAULT_AGENCY_ID,
    )


#: A source's natural key: the contract sets no length limit (revision 0007).
NATURAL_KEY = Text

# One row per source per sync: what it read, loaded and set aside, and how it ended.
sync_run = Table(
    "sync_run",
    metadata,
    Column("sync_run_id", RUN_ID, primary_key=True),
    Column("job_id", RUN_ID, nullable=False),
    _agency(),
    Column("source", String(32), nullable=False),
    Column("is_full_refresh", Boolean, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(16), nullable=False),  # running, succeeded, failed, abandoned
    Column("pages", Integer, nullable=False, default=0),
    Column("records_read", Integer, nullable=False, default=0),
    Column("records_loaded", Integer, nullable=False, default=0),
    Column("records_set_aside", Integer, nullable=False, default=0),
    Column("duration_seconds", Float),
    Column("error", Text),
    Column("holder", RUN_ID),  # the process running it (revision 0006): see warehouse/runs.py
    Index(None, "job_id"),
)

# One row per stream: the incremental watermark, committed with the rows it covers.
sync_state = Table(
    "sync_state",
    metadata,
    _agency(primary_key=True),
    Column("stream", String(64), primary_key=True),  # e.g. "enforcement.inspections"
    Column("watermark_at", DateTime),  # newest change time loaded (UTC)
    Column("sync_run_id", RUN_ID),
    Column("updated_at", DateTime, nullable=False),
)

# One row per distinct record version received (append-only audit trail).
landed_record = Table(
    "landed_record",
    metadata,
    Column(
        "landed_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("sync_run_id", RUN_ID, nullable=False),
    _agency(),
    Column("stream", String(64), nullable=False),
    Column("natural_key", NATURAL_KEY),
    Column("changed_at", DateTime),
    Column("record_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("landed_at", DateTime, nullable=False),
    # a version is its key and hash (revision 0011): the key leads, so a record's
    # versions are one range and inserts come in nearly key order, not hash order
    UniqueConstraint("agency_id", "stream", "natural_key", "record_hash"),
)

# One row per distinct malformed record version received, with the reason.
quarantined_record = Table(
    "quarantined_record",
    metadata,
    Column(
        "quarantine_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("sync_run_id", RUN_ID, nullable=False),
    _agency(),
    Column("stream", String(64), nullable=False),
    Column("natural_key", NATURAL_KEY),
    Column("check_name", String(128), nullable=False),  # "contract" or an expectation
    Column("reason", Text, nullable=False),
    Column("record_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("quarantined_at", DateTime, nullable=False),
    UniqueConstraint("agency_id", "stream", "record_hash"),
)


def _current_state_columns() -> list[Column]:
    return [
        Column("changed_at", DateTime, nullable=False),
        Column("record_hash", String(64), nullable=False),  # the version in landed_record
        Column("is_set_aside", Boolean, nullable=False, default=False),
        Column("set_aside_reason", Text),
        Column("sync_run_id", RUN_ID, nullable=False),
    ]


# One row per application_id: current state of a work-permit application.
permit_application = Table(
    "permit_application",
    metadata,
    _agency(primary_key=True),
    Column("application_id", NATURAL_KEY, primary_key=True),
    Column("received_at", DateTime),
    Column("received_on", Date),
    Column("decided_at", DateTime),
    Column("decided_on", Date),
    Column("status", String(16)),
    Column("permit_type", String(16)),
    Column("category", String(1)),
    Column("employer_credit_code", Text),  # free text (revision 0007)
    Column("employer_name", Text),
    Column("applicant_pseudonym", String(64)),
    Column("applicant_nationality", Text),  # free text (revision 0007)
    Column("is_joint_residence_permit", Boolean),
    Column("promised_days", Integer),
    *_current_state_columns(),
    Index(None, "received_on"),
    Index(None, "decided_on"),
)

# One row per inspection_no: current state of an inspection.
inspection = Table(
    "inspection",
    metadata,
    _agency(primary_key=True),
    Column("inspection_no", NATURAL_KEY, primary_key=True),
    Column("task_type", String(16)),
    Column("is_joint", Boolean),
    Column("target_credit_code", Text),  # free text (revision 0007)
    Column("target_name", Text),
    Column("credit_risk_level", String(1)),
    Column("is_credit_rule_applied", Boolean),
    Column("inspected_on", Date),
    Column("officers", Text),  # JSON list as received: [{"officer_id", "certified"}]
    Column("officer_count", Integer),
    Column("is_all_officers_certified", Boolean),
    Column("outcome", String(32)),
    Column("is_published", Boolean),
    Column("published_on", Date),
    *_current_state_columns(),
    Index(None, "inspected_on"),
    Index(None, "published_on"),  # the calendar's date extremes (revision 0010)
)

# One row per officer_id ever on the roster; those who left are is_active = false.
officer = Table(
    "officer",
    metadata,
    _agency(primary_key=True),
    Column("officer_id", NATURAL_KEY, primary_key=True),
    Column("name", Text),
    Column("role", String(16)),
    Column("is_certified", Boolean),
    Column("certificate_expires_on", Date),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("first_seen_at", DateTime, nullable=False),
    Column("left_at", DateTime),
    *_current_state_columns(),
)

# One row per doc_id: current state of a document; tombstones set is_deleted.
document = Table(
    "document",
    metadata,
    _agency(primary_key=True),
    Column("doc_id", NATURAL_KEY, primary_key=True),
    Column("title", Text),
    Column("doc_type", String(32)),
    Column("drafting_unit", Text),
    Column("issued_on", Date),
    Column("is_legality_reviewed", Boolean),
    Column("legality_reviewed_on", Date),
    Column("is_fair_competition_reviewed", Boolean),
    Column("has_filing", Boolean),
    Column("is_filed", Boolean),
    Column("filed_on", Date),
    Column("filing_deadline_on", Date),
    Column("is_filing_accepted", Boolean),
    Column("filing_issues", Text),  # JSON list of strings
    Column("status", String(16)),
    Column("status_changed_on", Date),
    Column("is_deleted", Boolean, nullable=False, default=False),
    Column("deleted_at", DateTime),
    *_current_state_columns(),
    Index(None, "issued_on"),
    Index(None, "filing_deadline_on"),  # the early warnings (revision 0010)
)

# One row per day of the years the data needs: the working-day calendar, with a running
# count of working days so that working_days(a, b) = seq(b) - seq(a) is a join, not a
# loop. is_provisional: the day's year has no published arrangement (counted Monday to
# Friday); provisional_seq counts such days, so working_days(a, b) is provisional when
# provisional_seq(b) > provisional_seq(a). Revision 0005 added both.
calendar_day = Table(
    "calendar_day",
    metadata,
    Column("day", Date, primary_key=True),
    Column("is_working", Boolean, nullable=False),
    Column("workday_seq", Integer, nullable=False),
    Column("is_provisional", Boolean, nullable=False, server_default=false()),
    Column("provisional_seq", Integer, nullable=False, server_default="0"),
)

# Key/value facts about the warehouse itself (e.g. the calendar's fingerprint).
warehouse_meta = Table(
    "warehouse_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


def natural_key_column(table: Table) -> Column:
    """A core table's natural key: its primary key's column after ``agency_id``."""
    return next(c for c in table.primary_key.columns if c.name != "agency_id")


CORE_TABLES = {
    "permits.applications": permit_application,
    "enforcement.inspections": inspection,
    "enforcement.officers": officer,
    "docreview.documents": document,
}


# --- alerting (revision 0003) ---------------------------------------------------------------

# One row per (metric, period): the status last announced, so a change is announced once.
alert_state = Table(
    "alert_state",
    metadata,
    _agency(primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("changed_at", DateTime, nullable=False),
    Column("last_announced_at", DateTime),
)

# One row per alert raised (slipped, recovered, reminder, early_warning).
alert = Table(
    "alert",
    metadata,
    Column("alert_id", RUN_ID, primary_key=True),
    _agency(),  # the supervising office's digest: the rollup id ``all``
    Column("dedupe_key", Text, nullable=False, unique=True),  # embeds a natural key
    Column("kind", String(16), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("period", String(16), nullable=False),
    Column("as_of", Date),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("severity", String(16)),  # the target's severity (revision 0008)
    # the stored target check that justified a slip/recovery/reminder (revision 0008)
    Column("check_result_id", BigInteger().with_variant(Integer, "sqlite")),
)

# One row per alert per channel: pending, sending, sent (channel shown without secrets).
alert_delivery = Table(
    "alert_delivery",
    metadata,
    Column("alert_id", RUN_ID, primary_key=True),
    Column("channel_id", String(16), primary_key=True),
    _agency(),  # the alert's
    Column("channel", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("updated_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    # revision 0006: who claimed a `sending` delivery, and until when the claim holds
    Column("claimed_by", RUN_ID),
    Column("lease_expires_at", DateTime),
)


# --- checks (revision 0002) -----------------------------------------------------------------

# The data-quality suites select the rows a sync wrote by their sync run.
for _core in (permit_application, inspection, officer, document):
    Index(f"ix_{_core.name}_sync_run_id", _core.c.sync_run_id)

# One row per check run: a data-quality pass over the rows of one nightly job, or
# the target checks of one period at one as-of date.
check_run = Table(
    "check_run",
    metadata,
    Column("check_run_id", RUN_ID, primary_key=True),
    Column("job_id", RUN_ID),  # the nightly job that ran it; null for `rulewatch check`
    _agency(),
    Column("kind", String(16), nullable=False),  # data_quality, targets
    Column("period", String(16)),  # targets: the period checked
    Column("as_of", Date),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("duration_seconds", Float),
    Column("checked", Integer, nullable=False, default=0),  # expectations evaluated
    Column("failed", Integer, nullable=False, default=0),  # failed or slipped
    Column("rows_checked", Integer, nullable=False, default=0),
    Column("set_aside", Integer, nullable=False, default=0),  # rows set aside by critical checks
    Column("released", Integer, nullable=False, default=0),  # set-aside rows that pass again
    Column("data_docs", Text),  # the Data Docs index page
    Column("holder", RUN_ID),  # revision 0006: the process running it
    Column("status", String(16)),  # revision 0006: running, finished, abandoned
    Index(None, "job_id"),
)

# One row per check evaluated in a run: a target of targets.yaml (metric set) or a
# data-quality expectation of checks.yaml (stream set). value = numerator / denominator
# is the share of records that pass; status is met, slipped or no_data for a target
# and passed or failed for a data-quality expectation.
check_result = Table(
    "check_result",
    metadata,
    Column(
        "check_result_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("check_run_id", RUN_ID, nullable=False),
    _agency(),  # the check run's
    Column("suite", String(128), nullable=False),  # the GX expectation suite
    Column("expectation", String(128), nullable=False),  # metric id or expectation name
    Column("expectation_type", String(128), nullable=False),  # the GX expectation type
    Column("severity", String(16), nullable=False),  # critical, warning
    Column("metric", String(64)),
    Column("stream", String(64)),
    Column("period", String(16)),
    Column("as_of", Date),
    Column("value", Float),
    Column("numerator", Integer),
    Column("denominator", Integer),
    Column("target", Float),
    Column("status", String(16), nullable=False),
    Column("is_success", Boolean),  # Great Expectations' own verdict
    Column("offender_count", Integer, nullable=False, default=0),
    Column("set_aside", Integer, nullable=False, default=0),
    Column("checked_at", DateTime, nullable=False),
    # counts working days of a year not yet published (revision 0008)
    Column("is_provisional", Boolean, nullable=False, server_default=false()),
    Index(None, "metric", "period"),
    Index(None, "check_run_id"),
)

# One row per offending record of a check result: every one, not a sample.
check_offender = Table(
    "check_offender",
    metadata,
    Column(
        "check_result_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("natural_key", NATURAL_KEY, primary_key=True),
    Column("reason", Text),
    _agency(),  # the check result's
)


# --- report tables (revision 0004) ----------------------------------------------------------
# What downstream reports and BI tools read, with plain SQL on SQLite or PostgreSQL.

# One row per metric per period per as-of date: the figures as they stood on that date.
# The nightly history; a re-run for the same date replaces its rows. computed_by says
# which job wrote them: nightly, backfill (history rebuilt from the current state) or demo.
report_metric = Table(
    "report_metric",
    metadata,
    _agency(primary_key=True),  # or ``all``: the city rollup
    Column("metric", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),  # 2023, 2023-Q4, 2023-10
    Column("as_of", Date, primary_key=True),
    Column("period_kind", String(8), nullable=False),  # year, quarter, month
    Column("period_start_on", Date, nullable=False),
    Column("period_end_on", Date, nullable=False),  # the period's end, not cut at as_of
    Column("metric_kind", String(8), nullable=False),  # count, rate, yoy
    Column("value", Float),
    Column("numerator", Integer),
    Column("denominator", Integer),
    Column("target", Float),
    Column("status", String(16), nullable=False),  # met, slipped, no_data, info
    Column("computed_by", String(16), nullable=False),
    Column("job_id", RUN_ID),
    Column("computed_at", DateTime, nullable=False),
    # counts working days of a year whose arrangement was not published (0005)
    Column("is_provisional", Boolean, nullable=False, server_default=false()),
    Index(None, "period", "as_of"),
)

# One row per target per period: its latest status (the newest as-of date; re-running an
# older date never hides it), with since when it has been slipping.
report_target_status = Table(
    "report_target_status",
    metadata,
    _agency(primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("value", Float),
    Column("numerator", Integer, nullable=False),
    Column("denominator", Integer, nullable=False),
    Column("target", Float, nullable=False),
    Column("severity", String(16), nullable=False),  # critical, warning
    Column("status", String(16), nullable=False),  # met, slipped, no_data
    Column("offender_count", Integer, nullable=False),
    Column("slipped_since", Date),  # first as-of date of the current run of slips
    Column("check_result_id", BigInteger),  # the stored target check it came from, if any
    Column("updated_at", DateTime, nullable=False),
    # counts working days of a year whose arrangement was not published (0005)
    Column("is_provisional", Boolean, nullable=False, server_default=false()),
)

# One row per offending record of a target's latest status: every one, with the reason.
report_offender = Table(
    "report_offender",
    metadata,
    _agency(primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("natural_key", NATURAL_KEY, primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("reason", Text),
)
