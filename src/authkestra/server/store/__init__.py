"""Persistent server state (SQLAlchemy: SQLite by default, PostgreSQL for several instances)."""

from .records import ClientRecord, SecretHash, SigningKeyRecord, TrustedIssuerRecord
from .store import (
    ClientExists,
    IssuerExists,
    IssuerInUse,
    Store,
    StoreMissing,
    UnknownClient,
    UnknownIssuer,
    new_secret,
)

__all__ = [
    "ClientExists",
    "ClientRecord",
    "IssuerExists",
    "IssuerInUse",
    "SecretHash",
    "SigningKeyRecord",
    "Store",
    "StoreMissing",
    "TrustedIssuerRecord",
    "UnknownClient",
    "UnknownIssuer",
    "new_secret",
]
