"""Client authentication at the token endpoint (RFC 6749 §2.3)."""

from __future__ import annotations

import base64
import enum
from urllib.parse import quote_plus, unquote_plus

from ..errors import ConfigError

__all__ = ["AuthMethod", "basic_credentials", "check_client_id", "decode_basic_credentials"]


class AuthMethod(str, enum.Enum):
    """How the client proves its identity to the token endpoint."""

    CLIENT_SECRET_BASIC = "client_secret_basic"
    """HTTP Basic with the form-encoded id and secret (the default)."""
    CLIENT_SECRET_POST = "client_secret_post"
    """``client_id`` and ``client_secret`` in the form body."""
    NONE = "none"
    """A public client: ``client_id`` in the body, no secret."""
    PRIVATE_KEY_JWT = "private_key_jwt"
    """A JWT signed with the client's private key (RFC 7523); no shared secret."""
    CLIENT_SECRET_JWT = "client_secret_jwt"
    """A JWT signed with HMAC-SHA256 under the client secret (RFC 7523)."""
    TLS_CLIENT_AUTH = "tls_client_auth"
    """A CA-issued TLS client certificate (RFC 8705 §2.1); ``client_id`` in the body."""
    SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"
    """A self-signed TLS client certificate registered with the server (RFC 8705 §2.2)."""

    @classmethod
    def parse(cls, value: str | AuthMethod) -> AuthMethod:
        """The method named ``value``, or a ConfigError listing the valid ones."""
        if isinstance(value, AuthMethod):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ConfigError(f"auth_method {value!r} is not one of: {valid}") from None

    @property
    def needs_secret(self) -> bool:
        return self not in (AuthMethod.NONE, AuthMethod.PRIVATE_KEY_JWT) and not self.uses_tls

    @property
    def uses_tls(self) -> bool:
        """The client proves itself with the TLS client certificate of the connection."""
        return self in (AuthMethod.TLS_CLIENT_AUTH, AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH)

    @property
    def uses_assertion(self) -> bool:
        return self in (AuthMethod.PRIVATE_KEY_JWT, AuthMethod.CLIENT_SECRET_JWT)


def basic_credentials(client_id: str, secret: str, *, form_encode: bool = True) -> str:
    """The ``Authorization`` header value for HTTP Basic client authentication.

    RFC 6749 §2.3.1: the id and the secret are each encoded with
    ``application/x-www-form-urlencoded`` and then joined with ``:`` and
    base64-encoded as UTF-8. ``form_encode=False`` skips the first step, for
    servers that do not decode it; a ``:`` in the client id then cannot be
    represented and is a ConfigError.
    """
    if form_encode:
        user, password = quote_plus(client_id, safe=""), quote_plus(secret, safe="")
    else:
        if ":" in client_id:
            raise ConfigError(
                "a client_id containing ':' cannot be sent with Basic authentication unless"
                " it is form-encoded (RFC 6749 §2.3.1); keep form encoding on"
            )
        user, password = client_id, secret
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def decode_basic_credentials(header_value: str, *, form_encoded: bool = True) -> tuple[str, str]:
    """Inverse of :func:`basic_credentials`; ValueError when the value is not valid."""
    scheme, _, encoded = header_value.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise ValueError("not a Basic credential")
    decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    user, sep, password = decoded.partition(":")
    if not sep:
        raise ValueError("no ':' between client id and secret")
    if form_encoded:
        return unquote_plus(user, errors="strict"), unquote_plus(password, errors="strict")
    return user, password


def check_client_id(client_id: object) -> str:
    """``client_id`` if it can name a client: a non-empty string without control characters."""
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigError("client_id must be a non-empty string")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in client_id):
        raise ConfigError("client_id must not contain control characters")
    return client_id
