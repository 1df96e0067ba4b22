"""crashed runs heal: run holders, check-run status, delivery leases

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 18:00:00

- ``sync_run.holder`` and ``check_run.holder``: the process that runs the row (its
  lease lock says whether it is alive), so a later run can mark a dead one
  ``abandoned``;
- ``check_run.status``: running, finished, abandoned (rows before this revision:
  finished when they have a ``finished_at``);
- ``alert_delivery.claimed_by`` and ``lease_expires_at``: a ``sending`` claim
  expires, so a delivery cut off by a crash is retried.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(length=36), nullable=True))
    with op.batch_alter_table("check_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE check_run SET status = CASE WHEN finished_at IS NULL THEN 'running' "
        "ELSE 'finished' END"
    )
    with op.batch_alter_table("alert_delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_delivery", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("check_run", schema=None) as batch_op:
        batch_op.drop_column("status")
        batch_op.drop_column("holder")
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.drop_column("holder")
