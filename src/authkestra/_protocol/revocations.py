"""The revocation list both sides speak of (``GET /revocations`` of ``authkestra serve``)."""

from __future__ import annotations

__all__ = ["CHANNEL", "METADATA_MEMBER", "REVOCATIONS_TYP"]

#: The JWT type of a signed revocation list: never an access token.
REVOCATIONS_TYP = "authkestra-revocations+jwt"
#: Where the server's metadata says the list is.
METADATA_MEMBER = "revocation_list_endpoint"
#: The Redis channel a server publishes on when it revokes a token or disables a client.
CHANNEL = "authkestra:revocations"
