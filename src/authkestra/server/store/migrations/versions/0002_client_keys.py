"""Keys instead of shared secrets: client JWKS / jwks_uri, encrypted secrets, used assertions."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # private_key_jwt: the client's public keys, inline or where to fetch them.
    op.add_column("clients", sa.Column("jwks", sa.Text, nullable=True))
    op.add_column("clients", sa.Column("jwks_uri", sa.String(2048), nullable=True))
    # client_secret_jwt: HS256 is verified with the secret itself, kept encrypted (AES-GCM)
    # next to its keyed hash, per secret, so a rotated-out secret works through its grace.
    op.add_column("client_secrets", sa.Column("encrypted_secret", sa.Text, nullable=True))
    # RFC 7523 §3 item 7: each jti once per client, remembered until the assertion expires.
    op.create_table(
        "used_assertions",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("jti", sa.String(256), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_used_assertions_expires_at", "used_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("used_assertions")
    with op.batch_alter_table("client_secrets") as batch:
        batch.drop_column("encrypted_secret")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("jwks_uri")
        batch.drop_column("jwks")
