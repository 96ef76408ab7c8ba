"""Mutual TLS (RFC 8705): the certificate subject of tls_client_auth clients."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Self-signed certificates go in the existing jwks column (as x5c), like RFC 8705 §2.2.
    op.add_column("clients", sa.Column("tls_client_auth", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("tls_client_auth")
