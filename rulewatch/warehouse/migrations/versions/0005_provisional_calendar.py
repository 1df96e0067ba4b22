"""provisional working days: calendar days of unpublished years, provisional report figures

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FLAGGED = ("report_metric", "report_target_status")


def upgrade() -> None:
    op.add_column(
        "calendar_day",
        sa.Column("is_provisional", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "calendar_day",
        sa.Column("provisional_seq", sa.Integer(), nullable=False, server_default="0"),
    )
    for table in _FLAGGED:
        op.add_column(
            table,
            sa.Column("is_provisional", sa.Boolean(), nullable=False, server_default=sa.false()),
        )
    # The calendar is rebuilt from the official source on the next refresh.
    op.execute("DELETE FROM warehouse_meta WHERE key = 'calendar_fingerprint'")


def downgrade() -> None:
    for table in _FLAGGED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("is_provisional")
    with op.batch_alter_table("calendar_day") as batch:
        batch.drop_column("provisional_seq")
        batch.drop_column("is_provisional")
