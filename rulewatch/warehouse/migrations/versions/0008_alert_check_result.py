"""an alert names the stored check result that justified it, and its severity

``alert.check_result_id`` joins a target alert to the ``check_result`` row it was
read from (alerts no longer recompute statuses); ``alert.severity`` carries the
target's severity (critical, warning). ``check_result.is_provisional`` keeps the
"counts working days of a year not yet published" flag with the check, so every
reader of the stored check sees it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.add_column(sa.Column("severity", sa.String(16), nullable=True))
        batch.add_column(sa.Column("check_result_id", _ID, nullable=True))
    with op.batch_alter_table("check_result") as batch:
        batch.add_column(
            sa.Column("is_provisional", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("check_result") as batch:
        batch.drop_column("is_provisional")
    with op.batch_alter_table("alert") as batch:
        batch.drop_column("check_result_id")
        batch.drop_column("severity")
