"""Federated client authentication: the external issuers the server trusts (a Kubernetes
cluster, GitHub Actions, a SPIFFE trust domain), and clients bound to one of them and a
subject, with no secret or key of their own."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trusted_issuers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("issuer", sa.String(2048), nullable=False, unique=True),
        sa.Column("jwks_url", sa.String(2048), nullable=True),
        sa.Column("audience", sa.String(2048), nullable=True),
        sa.Column("max_lifetime", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("clients", sa.Column("federated_issuer", sa.String(64), nullable=True))
    op.add_column("clients", sa.Column("federated_subject", sa.String(1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("federated_subject")
        batch.drop_column("federated_issuer")
    op.drop_table("trusted_issuers")
