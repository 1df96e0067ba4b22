"""natural keys and free-text codes as text: the source contract sets no length limit

Every column that holds a source's natural key (landed and set-aside records, the
core tables' keys, check and report offenders), the alert dedupe key that embeds
one, and the free-text credit codes and nationality become ``text``. PostgreSQL
enforced the declared lengths and refused a whole batch over one longer value
(a too-long credit code is a data-quality warning, not a reason to lose the
record); SQLite never enforced them (the batch copy there only brings the
declared types in step with the schema, once per table).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: table -> [(column, declared length before this revision)]
_COLUMNS = {
    "landed_record": [("natural_key", 128)],
    "quarantined_record": [("natural_key", 128)],
    "permit_application": [
        ("application_id", 128),
        ("employer_credit_code", 32),
        ("applicant_nationality", 3),
    ],
    "inspection": [("inspection_no", 128), ("target_credit_code", 32)],
    "officer": [("officer_id", 128)],
    "document": [("doc_id", 128)],
    "check_offender": [("natural_key", 128)],
    "report_offender": [("natural_key", 128)],
    "alert": [("dedupe_key", 255)],
}


def upgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, length in columns:
                batch_op.alter_column(name, type_=sa.Text(), existing_type=sa.String(length))


def downgrade() -> None:
    # On PostgreSQL this stops (and changes nothing) while a longer value is stored:
    # nothing is truncated.
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, length in columns:
                batch_op.alter_column(name, type_=sa.String(length), existing_type=sa.Text())
