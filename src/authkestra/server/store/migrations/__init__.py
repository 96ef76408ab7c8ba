"""Versioned schema migrations (Alembic), applied by ``Store.migrate()``."""
