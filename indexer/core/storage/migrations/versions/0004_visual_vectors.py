"""Visual vectors: a second, purely visual vector per photo for image-to-image search and duplicates
(filled on the next ``dualens index`` for models that have one; NULL until then and for CLIP models).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("visual", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("visual")
