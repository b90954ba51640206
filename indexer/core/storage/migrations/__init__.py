"""Create and upgrade the collection schema with Alembic, on SQLite and PostgreSQL alike.

Revisions live in ``versions/`` (hand-written, numbered; ``HEAD`` names the newest and a test checks
that the revisions build exactly the models of ``schema.py``). A database at ``HEAD`` is recognised
with one query, without importing Alembic, so opening a collection stays fast. A SQLite file of the
releases before Alembic (a ``schema_version`` table holding 1) is stamped ``0001`` and upgraded.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from indexer.core.errors import CollectionError

HEAD = "0006"
SCRIPTS = Path(__file__).resolve().parent
_MIGRATION_LOCK = 0x64756C6E_0001  # PostgreSQL advisory lock: one process migrates a database at a time


def stored_revision(conn: Connection) -> str | None:
    """The schema revision of the database (None: no dualens schema in it yet)."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if "schema_version" in tables:  # before Alembic: ordered migrations, only version 1 was released
        version = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
        return "0001" if version == 1 else f"schema_version {version}"
    return None


def _config(conn: Connection):  # -> alembic.config.Config (imported only when a migration runs)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    return config


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    config = _config(None)  # type: ignore[arg-type]
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def upgrade(engine: Engine) -> str:
    """Bring the database to ``HEAD`` (creating the schema in an empty one); returns the revision.

    CollectionError for a revision this dualens does not know (a newer release wrote it).
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        revision = stored_revision(conn)
        if revision == HEAD:
            return HEAD
        if revision is not None and revision not in known_revisions():
            raise CollectionError(
                f"the collection database has schema revision {revision!r}, which this version of "
                f"dualens does not know (it knows up to {HEAD!r}); a newer dualens wrote it: upgrade "
                "dualens to open it. Nothing was changed"
            )
        from alembic import command

        config = _config(conn)
        if revision == "0001" and not inspect(conn).has_table("alembic_version"):
            command.stamp(config, "0001")
        command.upgrade(config, "head")
    return HEAD
