"""Staged re-index: the new model's vectors are written beside the old ones (``next_vector``,
``next_visual``) while searches keep using the old ones, and swapped in at once when complete.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("next_vector", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("next_visual", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("next_visual")
        batch.drop_column("next_vector")
