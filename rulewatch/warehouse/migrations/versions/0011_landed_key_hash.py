"""landed_record: one unique index on (agency_id, stream, natural_key, record_hash)

A landed version was unique on (agency_id, stream, record_hash), with a second
index on (agency_id, stream, natural_key) for reading a record's versions. Every
landed row paid both, and the unique one is ordered by a SHA-256: each insert
lands at a random place in it, so once it outgrows the database's cache (on
SQLite's 32 MB, from about 300,000 records) every insert reads and writes pages
from all over it. A full load of a million records on SQLite took 101 s, 78 s
with this one index in their place (extract+load alone, same machine).

The one index keeps both duties: a version is the same version exactly when its
natural key and hash are (the hash is of the payload, which holds the key: equal
hashes have equal keys, so nothing that was a duplicate stops being one), and a
record's versions are its leading columns. Where keys arrive in about the order
a source made them (the demo's do, as do numbers by year and sequence), inserts
stay near each other; where they do not, there is still one index fewer to keep.
Landed rows always have a key (a record without one is set aside, in
``quarantined_record``).

On SQLite the table is copied once (a table's UNIQUE constraint cannot be
dropped in place): an upgrade of a large warehouse takes a while and needs room
for a second copy of ``landed_record``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 01:00:00
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_OLD_UNIQUE = "uq_landed_record_agency_id_stream_record_hash"
_OLD_INDEX = "ix_landed_record_agency_id_stream_natural_key"
_NEW_UNIQUE = "uq_landed_record_agency_id_stream_natural_key_record_hash"


def upgrade() -> None:
    with op.batch_alter_table("landed_record") as batch:
        batch.drop_constraint(_OLD_UNIQUE, type_="unique")
        batch.drop_index(_OLD_INDEX)
        batch.create_unique_constraint(
            _NEW_UNIQUE, ["agency_id", "stream", "natural_key", "record_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("landed_record") as batch:
        batch.drop_constraint(_NEW_UNIQUE, type_="unique")
        batch.create_unique_constraint(_OLD_UNIQUE, ["agency_id", "stream", "record_hash"])
        batch.create_index(_OLD_INDEX, ["agency_id", "stream", "natural_key"])
