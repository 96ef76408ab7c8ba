"""The revocation list both sides speak of (``GET /revocations`` of ``authkestra serve``)."""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CHANNEL", "METADATA_MEMBER", "REVOCATIONS_TYP", "client_digest"]

#: The JWT type of a signed revocation list: never an access token.
REVOCATIONS_TYP = "authkestra-revocations+jwt"
#: Where the server's metadata says the list is.
METADATA_MEMBER = "revocation_list_endpoint"
#: The Redis channel a server publishes on when it revokes a token or disables a client.
CHANNEL = "authkestra:revocations"


def client_digest(client_id: str) -> str:
    """How the public list names a disabled client: SHA-256 of its id, base64url.

    The list is public (APIs fetch it without credentials): it says which tokens to
    refuse, not which clients exist. A digest can still confirm a guessed id of a
    disabled client; ids of enabled clients never appear.
    """
    digest = hashlib.sha256(client_id.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
