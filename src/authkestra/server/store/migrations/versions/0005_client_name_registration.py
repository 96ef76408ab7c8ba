"""A client's display name (RFC 7591 client_name), and the keyed hash of the registration
access token of a client registered dynamically (RFC 7592)."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("client_name", sa.String(256), nullable=True))
    op.add_column("clients", sa.Column("registration_token_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("registration_token_hash")
        batch.drop_column("client_name")
