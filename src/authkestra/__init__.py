"""authkestra: machine-to-machine OAuth 2.0 (Client Credentials) for Python.

The public API; everything else is internal and may change::

    from authkestra import ClientCredentialsFlow

    flow = ClientCredentialsFlow(client_id, client_secret, token_url)
    token = await flow.get_token(["read", "write"])
"""

from ._version import __version__
from .assertions import AssertionFile
from .errors import (
    AuthError,
    ClientAssertionError,
    ConfigError,
    InsufficientScope,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    MalformedResponse,
    NetworkError,
    OAuthError,
    ProviderError,
    RateLimited,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from .flow import AuthMethod, ClientCredentialsFlow, RetryPolicy
from .secrets import EnvSecret, FileSecret, Secret, SecretSource
from .token import Token

__all__ = [
    "AssertionFile",
    "AuthError",
    "AuthMethod",
    "ClientAssertionError",
    "ClientCredentialsFlow",
    "ConfigError",
    "EnvSecret",
    "FileSecret",
    "InsufficientScope",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "MalformedResponse",
    "NetworkError",
    "OAuthError",
    "ProviderError",
    "RateLimited",
    "RetryPolicy",
    "Secret",
    "SecretSource",
    "Token",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "__version__",
]
