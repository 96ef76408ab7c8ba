"""Persistent server state (SQLAlchemy: SQLite by default, PostgreSQL for several instances)."""

from .records import ClientRecord, SecretHash, SigningKeyRecord
from .store import ClientExists, Store, StoreMissing, UnknownClient, new_secret

__all__ = [
    "ClientExists",
    "ClientRecord",
    "SecretHash",
    "SigningKeyRecord",
    "Store",
    "StoreMissing",
    "UnknownClient",
    "new_secret",
]
