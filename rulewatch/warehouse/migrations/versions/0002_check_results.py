"""check results: runs, results, offenders; core rows indexed by sync run

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CORE = ("permit_application", "inspection", "officer", "document")


def upgrade() -> None:
    op.create_table(
        "check_run",
        sa.Column("check_run_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("rows_checked", sa.Integer(), nullable=False),
        sa.Column("set_aside", sa.Integer(), nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("data_docs", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("check_run_id", name=op.f("pk_check_run")),
    )
    with op.batch_alter_table("check_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_check_run_job_id"), ["job_id"], unique=False)

    op.create_table(
        "check_result",
        sa.Column("check_result_id", _ID, autoincrement=True, nullable=False),
        sa.Column("check_run_id", sa.String(length=36), nullable=False),
        sa.Column("suite", sa.String(length=128), nullable=False),
        sa.Column("expectation", sa.String(length=128), nullable=False),
        sa.Column("expectation_type", sa.String(length=128), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=True),
        sa.Column("stream", sa.String(length=64), nullable=True),
        sa.Column("period", sa.String(length=16), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("numerator", sa.Integer(), nullable=True),
        sa.Column("denominator", sa.Integer(), nullable=True),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_success", sa.Boolean(), nullable=True),
        sa.Column("offender_count", sa.Integer(), nullable=False),
        sa.Column("set_aside", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("check_result_id", name=op.f("pk_check_result")),
    )
    with op.batch_alter_table("check_result", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_check_result_metric_period"), ["metric", "period"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_check_result_check_run_id"), ["check_run_id"], unique=False
        )

    op.create_table(
        "check_offender",
        sa.Column("check_result_id", _ID, autoincrement=False, nullable=False),
        sa.Column("natural_key", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("check_result_id", "natural_key", name=op.f("pk_check_offender")),
    )

    for table in _CORE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_sync_run_id", ["sync_run_id"], unique=False)


def downgrade() -> None:
    for table in _CORE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_sync_run_id")
    op.drop_table("check_offender")
    with op.batch_alter_table("check_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_check_result_check_run_id"))
        batch_op.drop_index(batch_op.f("ix_check_result_metric_period"))
    op.drop_table("check_result")
    with op.batch_alter_table("check_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_check_run_job_id"))
    op.drop_table("check_run")
