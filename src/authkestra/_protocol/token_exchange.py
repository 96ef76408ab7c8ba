"""Token exchange (RFC 8693): the names both sides use, and the client's form fields."""

from __future__ import annotations

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "JWT_TOKEN_TYPE",
    "TOKEN_EXCHANGE",
    "TOKEN_TYPES",
    "exchange_fields",
]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
#: The token types a subject or actor token may be, and a new one asked for as.
TOKEN_TYPES = (ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE)


def exchange_fields(
    subject_token: str,
    subject_token_type: str,
    *,
    actor_token: str | None,
    actor_token_type: str,
    requested_token_type: str | None,
) -> tuple[tuple[str, str], ...]:
    """The grant's own form fields (RFC 8693 §2.1), scope and audience aside."""
    fields = [("subject_token", subject_token), ("subject_token_type", subject_token_type)]
    if actor_token is not None:
        fields += [("actor_token", actor_token), ("actor_token_type", actor_token_type)]
    if requested_token_type is not None:
        fields.append(("requested_token_type", requested_token_type))
    return tuple(fields)
