"""Indexed vectors are read in id order by status: one (status, id) index serves the rebuilds of big
collections; the ``schema_version`` table of the ordered-migration releases gives way to Alembic's.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_photos_status_id", "photos", ["status", "id"])
    op.drop_table("schema_version")


def downgrade() -> None:
    import sqlalchemy as sa

    op.create_table("schema_version", sa.Column("version", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO schema_version (version) VALUES (1)")
    op.drop_index("ix_photos_status_id", table_name="photos")
