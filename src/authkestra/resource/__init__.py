"""Resource servers: verify the access tokens your API receives.

- :class:`JWTVerifier` -- JWT access tokens (RFC 9068) against the issuer's JWKS;
- :class:`IntrospectionVerifier` -- opaque tokens, through RFC 7662 introspection;
- :class:`AccessToken` -- what a verified token says;
- :class:`TokenVerifier` -- what the integrations need of a verifier (yours too);
- framework integration: :mod:`authkestra.resource.asgi` (any ASGI app),
  :mod:`authkestra.resource.starlette`, :mod:`authkestra.resource.fastapi`.
"""

from ..errors import InsufficientScope, InvalidToken
from ._integration import TokenVerifier
from .access_token import AccessToken
from .introspection import IntrospectionVerifier
from .protected_resource import ResourceMetadata
from .revocations import Revocations
from .verifier import DEFAULT_ALGORITHMS, JWTVerifier

__all__ = [
    "DEFAULT_ALGORITHMS",
    "AccessToken",
    "InsufficientScope",
    "IntrospectionVerifier",
    "InvalidToken",
    "JWTVerifier",
    "ResourceMetadata",
    "Revocations",
    "TokenVerifier",
]
