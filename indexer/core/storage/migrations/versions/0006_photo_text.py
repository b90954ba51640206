"""Text in photos: the recognised text of each photo (``photo_text``, filled on the next
``dualens index``) and its full-text index: FTS5 kept in step by triggers on SQLite, a generated
``tsvector`` column with a GIN index on PostgreSQL (``indexer.core.storage.text``).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FTS_DELETE = (
    "INSERT INTO photo_text_fts(photo_text_fts, rowid, terms) VALUES ('delete', old.photo_id, old.terms); "
)
_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE photo_text_fts USING fts5(terms, content='photo_text', content_rowid='photo_id', "
    "tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER photo_text_fts_insert AFTER INSERT ON photo_text BEGIN "
    "INSERT INTO photo_text_fts(rowid, terms) VALUES (new.photo_id, new.terms); END",
    "CREATE TRIGGER photo_text_fts_delete AFTER DELETE ON photo_text BEGIN " + _FTS_DELETE + "END",
    "CREATE TRIGGER photo_text_fts_update AFTER UPDATE ON photo_text BEGIN "
    + _FTS_DELETE
    + "INSERT INTO photo_text_fts(rowid, terms) VALUES (new.photo_id, new.terms); END",
)
_POSTGRES_FTS = (
    "ALTER TABLE photo_text ADD COLUMN search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, terms)) STORED",
    "CREATE INDEX ix_photo_text_search ON photo_text USING gin (search)",
)


def upgrade() -> None:
    id_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "photo_text",
        sa.Column("photo_id", id_type, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("engine", sa.String(length=200), nullable=False),
        sa.Column("status", sa.Enum("ok", "none", "failed", name="textstatus", native_enum=False, length=16),
                  nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("words", sa.Integer(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
    )  # fmt: skip
    op.create_index("ix_photo_text_status", "photo_text", ["status"])
    for statement in _SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else _POSTGRES_FTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS photo_text_fts_{name}")
        op.execute("DROP TABLE IF EXISTS photo_text_fts")
    op.drop_index("ix_photo_text_status", table_name="photo_text")
    op.drop_table("photo_text")
