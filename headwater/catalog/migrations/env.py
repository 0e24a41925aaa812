"""Alembic environment: runs on the connection the catalog hands over (no alembic.ini)."""

from alembic import context

from headwater.catalog.tables import metadata

connection = context.config.attributes["connection"]
# render_as_batch: SQLite can only change tables by copying them; batch mode does that.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
