"""Alembic environment: runs on the connection rulewatch hands it."""

from alembic import context

from rulewatch.warehouse.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - rulewatch always passes a connection
    raise RuntimeError("rulewatch migrations run through rulewatch.warehouse.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
