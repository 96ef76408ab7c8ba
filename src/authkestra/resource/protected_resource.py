"""An API's own metadata (RFC 9728): who issues its tokens, served where clients look.

::

    metadata = ResourceMetadata.for_verifier(verifier, scopes=["reports:read"])
    app = BearerTokenMiddleware(app, verifier, resource_metadata=metadata)   # plain ASGI
    serve_resource_metadata(app, metadata)                                  # Starlette, FastAPI

The document is served at ``/.well-known/oauth-protected-resource`` (followed by the
resource's path, if its identifier has one: RFC 9728 §3.1), without a token, and every
``WWW-Authenticate`` challenge of the API names it (``resource_metadata="..."``,
§5.1), so a client that only knows the API's URL -- ``ClientCredentialsFlow.for_resource``,
an MCP client -- finds the authorization server by itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .._protocol.protected_resource import metadata_url, well_known_path
from .._protocol.urls import check_endpoint_url
from ..errors import ConfigError
from ._options import name_list
from .dpop import DPOP_ALGORITHMS

__all__ = ["METADATA_STATE_KEY", "ResourceMetadata", "metadata_for", "serve_resource_metadata"]

#: Where the Starlette and FastAPI integrations find the metadata: ``app.state.resource_metadata``.
METADATA_STATE_KEY = "resource_metadata"


class ResourceMetadata:
    """What a protected resource says of itself (RFC 9728 §2).

    Args:
        resource: the API's identifier -- the audience its tokens are for, an https URL.
        authorization_servers: the issuers whose tokens it accepts.
        scopes_supported: the scopes it uses (optional: a client can ask for them).
        dpop: it accepts DPoP-bound tokens (RFC 9449): the proof algorithms are listed;
            ``dpop_required`` says every token must be bound.
        tls_bound_tokens: it accepts certificate-bound tokens (RFC 8705).
        resource_name, resource_documentation: for people.
    """

    def __init__(
        self,
        resource: str,
        authorization_servers: Iterable[str],
        *,
        scopes_supported: Iterable[str] = (),
        dpop: bool = True,
        dpop_required: bool = False,
        tls_bound_tokens: bool = True,
        resource_name: str | None = None,
        resource_documentation: str | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        check_endpoint_url(resource, what="resource", allow_insecure_http=allow_insecure_http)
        if "#" in resource:
            raise ConfigError("resource must not have a fragment (RFC 9728 §1.2)")
        servers = name_list(authorization_servers, "authorization_servers")
        if not servers or not all(isinstance(s, str) and s for s in servers):
            raise ConfigError("authorization_servers: at least one issuer URL")
        self.resource = resource
        self.authorization_servers = tuple(servers)
        self.scopes_supported = tuple(name_list(scopes_supported, "scopes_supported"))
        document: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": list(self.authorization_servers),
            "bearer_methods_supported": ["header"],
            "tls_client_certificate_bound_access_tokens": tls_bound_tokens,
        }
        if self.scopes_supported:
            document["scopes_supported"] = list(self.scopes_supported)
        if dpop:
            document["dpop_signing_alg_values_supported"] = list(DPOP_ALGORITHMS)
            document["dpop_bound_access_tokens_required"] = dpop_required
        if resource_name:
            document["resource_name"] = resource_name
        if resource_documentation:
            document["resource_documentation"] = resource_documentation
        self.document = document
        self.body = json.dumps(document).encode()
        #: Where it is served, and the URL every challenge names.
        self.path = well_known_path(resource)
        self.url = metadata_url(resource)

    @classmethod
    def for_verifier(
        cls, verifier: Any, *, resource: str | None = None, **options: Any
    ) -> ResourceMetadata:
        """The metadata a verifier's settings describe: its issuer, and its audience as the
        resource (give ``resource`` when it accepts several)."""
        issuer = getattr(verifier, "issuer", None)
        if not isinstance(issuer, str) or not issuer:
            raise ConfigError("resource metadata: the verifier names no issuer; build it yourself")
        if resource is None:
            audiences = sorted(getattr(verifier, "audiences", ()) or ())
            if len(audiences) != 1:
                raise ConfigError(
                    "resource metadata: the verifier accepts several audiences (or none):"
                    " say which one is this resource (resource=...)"
                )
            resource = audiences[0]
        options.setdefault("allow_insecure_http", getattr(verifier, "allow_insecure_http", False))
        return cls(resource, [issuer], **options)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers of the metadata's answer: JSON, cacheable for an hour."""
        return [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            (b"cache-control", b"public, max-age=3600"),
        ]

    def __repr__(self) -> str:
        return f"ResourceMetadata({self.resource!r}, {list(self.authorization_servers)!r})"


def metadata_for(verifier: Any, given: ResourceMetadata | bool | None) -> ResourceMetadata | None:
    """The metadata an integration serves: ``given``; built from the verifier (True, or
    None when the verifier names one issuer and one audience); or none (False)."""
    if isinstance(given, ResourceMetadata):
        return given
    if given is False:
        return None
    try:
        return ResourceMetadata.for_verifier(verifier)
    except ConfigError:
        if given is True:
            raise
        return None  # an introspecting verifier, several audiences: not without being told


def serve_resource_metadata(app: Any, metadata: ResourceMetadata) -> None:
    """Serve ``metadata`` from a Starlette or FastAPI ``app`` (no token needed there) and
    name it in the challenges of the app's ``require_scopes`` and ``on_auth_error``."""
    from starlette.requests import Request
    from starlette.responses import Response

    async def endpoint(_request: Request) -> Response:
        return Response(
            metadata.body,
            media_type="application/json",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    app.add_route(metadata.path, endpoint, methods=["GET"], include_in_schema=False)
    setattr(app.state, METADATA_STATE_KEY, metadata)
