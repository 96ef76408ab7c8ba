"""Who may introspect what: a client's right to introspect (RFC 7662 §4)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: no right (what every client registered before had is taken away: an API that
    # introspects is given the right again with 'clients update --can-introspect').
    op.add_column("clients", sa.Column("introspection", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("introspection")
