"""Client secrets the server must be able to read back (``client_secret_jwt``), kept encrypted.

``client_secret_jwt`` assertions are HMACs keyed with the client secret itself,
so a keyed hash is not enough to verify them: the server needs the secret. It
is stored encrypted with AES-256-GCM, under a key derived (HKDF-SHA256) from the
server's secret-hashing key -- never stored next to it in the clear. The client
id is the associated data, so an encrypted secret copied to another client's
row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox"]

_INFO = b"authkestra client_secret_jwt secret encryption v1"
_PREFIX = "v1."
_NONCE_BYTES = 12


class SecretBox:
    """Encrypts and decrypts client secrets under a key derived from the server's HMAC key."""

    def __init__(self, server_key: bytes) -> None:
        if len(server_key) < 16:
            raise ValueError("the secret hashing key must be at least 16 bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            server_key
        )
        self._aead = AESGCM(derived)

    def encrypt(self, secret: str, client_id: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), client_id.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, blob: str, client_id: str) -> str | None:
        """The secret, or None when ``blob`` is not one this key sealed for ``client_id``."""
        if not blob.startswith(_PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(blob[len(_PREFIX) :].encode("ascii"))
            nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            plain = self._aead.decrypt(nonce, sealed, client_id.encode("utf-8"))
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error, UnicodeError):
            return None

    def __repr__(self) -> str:
        return "SecretBox(<key>)"
