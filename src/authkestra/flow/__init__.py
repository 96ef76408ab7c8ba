"""The client side: obtain tokens for this service and use them."""

from .._protocol.client_auth import AuthMethod
from .._protocol.discovery import ServerMetadata
from .._protocol.retry import RetryPolicy
from .client_credentials import ClientCredentialsFlow
from .token_source import TokenSource

__all__ = ["AuthMethod", "ClientCredentialsFlow", "RetryPolicy", "ServerMetadata", "TokenSource"]
