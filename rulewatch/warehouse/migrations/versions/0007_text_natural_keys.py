"""natural keys as text: the source contract sets no length limit on a key

Every column that holds a source's natural key (landed and set-aside records, the
core tables' keys, check and report offenders) and the alert dedupe key that
embeds one become ``text``. PostgreSQL enforced ``varchar(128)`` and rejected a
whole batch over one long key; SQLite never enforced it (the batch copy there
only brings the declared type in step with the schema).

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

#: table -> (column, declared length before this revision)
_COLUMNS = {
    "landed_record": ("natural_key", 128),
    "quarantined_record": ("natural_key", 128),
    "permit_application": ("application_id", 128),
    "inspection": ("inspection_no", 128),
    "officer": ("officer_id", 128),
    "document": ("doc_id", 128),
    "check_offender": ("natural_key", 128),
    "report_offender": ("natural_key", 128),
    "alert": ("dedupe_key", 255),
}


def upgrade() -> None:
    for table, (name, length) in _COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(name, type_=sa.Text(), existing_type=sa.String(length))


def downgrade() -> None:
    for table, (name, length) in _COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(name, type_=sa.String(length), existing_type=sa.Text())
