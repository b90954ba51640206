"""Alembic environment: migrations run on the connection dualens passes in (there is no alembic.ini).

A new revision is a hand-written file in ``versions/`` (next number, ``down_revision`` the previous
head) and a new ``HEAD`` in ``__init__.py``; ``tests/test_migrations.py`` checks that the revisions
build exactly the models of ``schema.py`` on SQLite and PostgreSQL.
"""

from alembic import context

from indexer.core.storage.schema import Base
from indexer.core.storage.text import full_text_artefact

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
    include_name=lambda name, _type, _parents: not full_text_artefact(name),  # made by hand in 0006
)
with context.begin_transaction():
    context.run_migrations()
