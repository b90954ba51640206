"""Places: the city, region and country reverse-geocoded from each photo's GPS position (filled on
the next ``dualens index``; NULL until then).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("place_city", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("place_region", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("place_country", sa.String(length=200), nullable=True))
    op.create_index("ix_photos_place_pending", "photos", ["place_country", "gps_lat"])


def downgrade() -> None:
    op.drop_index("ix_photos_place_pending", table_name="photos")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("place_country")
        batch.drop_column("place_region")
        batch.drop_column("place_city")
