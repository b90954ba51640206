"""The first dualens schema (what the ordered-migration releases called schema_version 1).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPLICATION_ID = 0x64756C6E  # "duln": marks a SQLite file as a dualens database


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    op.create_table(
        "photos",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("file_type", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("taken_at", sa.DateTime(), nullable=True),
        sa.Column("camera_make", sa.String(128), nullable=True),
        sa.Column("camera_model", sa.String(128), nullable=True),
        sa.Column("gps_lat", sa.Float(), nullable=True),
        sa.Column("gps_lon", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("indexed_at", sa.DateTime(), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("seen_run", sa.Integer(), nullable=False),
    )
    for column in ("root", "file_type", "content_hash", "taken_at", "status", "seen_run"):
        op.create_index(f"ix_photos_{column}", "photos", [column])
    op.create_index("ix_photos_path", "photos", ["path"], unique=True)
    op.create_table(
        "roots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False, unique=True),
        sa.Column("added_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "collection_info",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table("schema_version", sa.Column("version", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO schema_version (version) VALUES (1)")


def downgrade() -> None:
    for table in ("schema_version", "collection_info", "roots", "photos"):
        op.drop_table(table)
