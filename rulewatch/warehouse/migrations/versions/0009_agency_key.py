"""an agency key on every landed, core, check, alert and report table

A city's deployment watches many agencies in one warehouse (``agencies.yaml``).
Every per-agency table gains ``agency_id`` (NOT NULL, server default
``default``, so a warehouse made before agencies migrates in place with its rows
as the one agency's), and the keys that make a row unique lead with it: the
demo agencies, like two real departments, can send the same natural keys and
byte-identical payloads. The calendar and ``warehouse_meta`` stay shared.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 02:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: table -> its primary key's columns after agency_id; None: the key stays as it is
_KEYED = {
    "sync_state": ["stream"],
    "permit_application": ["application_id"],
    "inspection": ["inspection_no"],
    "officer": ["officer_id"],
    "document": ["doc_id"],
    "alert_state": ["metric", "period"],
    "report_metric": ["metric", "period", "as_of"],
    "report_target_status": ["metric", "period"],
    "report_offender": ["metric", "period", "natural_key"],
    "sync_run": None,
    "landed_record": None,
    "quarantined_record": None,
    "alert": None,
    "alert_delivery": None,
    "check_run": None,
    "check_result": None,
    "check_offender": None,
}
#: tables unique on (stream, record_hash), now per agency
_HASHED = ("landed_record", "quarantined_record")


def _agency_column() -> sa.Column:
    return sa.Column("agency_id", sa.String(64), nullable=False, server_default="default")


def upgrade() -> None:
    for table, key in _KEYED.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(_agency_column())
            if key is not None:
                batch.drop_constraint(f"pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", ["agency_id", *key])
            if table in _HASHED:
                batch.drop_constraint(f"uq_{table}_stream_record_hash", type_="unique")
                batch.create_unique_constraint(
                    f"uq_{table}_agency_id_stream_record_hash",
                    ["agency_id", "stream", "record_hash"],
                )
            if table == "landed_record":
                batch.drop_index("ix_landed_record_stream_natural_key")
                batch.create_index(
                    "ix_landed_record_agency_id_stream_natural_key",
                    ["agency_id", "stream", "natural_key"],
                )


def downgrade() -> None:
    # Stops (and changes nothing, on PostgreSQL) while two agencies share a key.
    for table, key in reversed(_KEYED.items()):
        with op.batch_alter_table(table) as batch:
            if table == "landed_record":
                batch.drop_index("ix_landed_record_agency_id_stream_natural_key")
                batch.create_index("ix_landed_record_stream_natural_key", ["stream", "natural_key"])
            if table in _HASHED:
                batch.drop_constraint(f"uq_{table}_agency_id_stream_record_hash", type_="unique")
                batch.create_unique_constraint(
                    f"uq_{table}_stream_record_hash", ["stream", "record_hash"]
                )
            if key is not None:
                batch.drop_constraint(f"pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", key)
            batch.drop_column("agency_id")
