"""OAuth 2.0 Protected Resource Metadata (RFC 9728): where an API says who issues its tokens.

An API publishes, at ``/.well-known/oauth-protected-resource`` (with its path, if its
identifier has one, appended: §3.1), a JSON document naming itself (``resource``) and
its authorization servers. A client that knows only the API's URL reads it to find
where to get a token -- and must refuse a document whose ``resource`` is not the URL
it asked about (§3.3), or an attacker's document could send it elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, MalformedResponse
from .actions import Operation
from .context import ProtocolContext
from .discovery import get_document, metadata_document
from .urls import check_endpoint_url

__all__ = [
    "WELL_KNOWN",
    "ProtectedResource",
    "discover_protected_resource",
    "metadata_url",
    "well_known_path",
]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """Where the metadata of ``resource`` is (RFC 9728 §3.1)."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


def well_known_path(resource: str) -> str:
    """The path an API serves its metadata at (for ``resource``)."""
    return urlsplit(metadata_url(resource)).path


@dataclasses.dataclass(frozen=True)
class ProtectedResource:
    """A protected resource's metadata, as read and checked: the resource identifier,
    its authorization servers (the first is the one used), and the whole document."""

    resource: str
    authorization_servers: tuple[str, ...]
    raw: dict[str, Any]


def discover_protected_resource(
    resource: str, ctx: ProtocolContext
) -> Operation[ProtectedResource]:
    """Read and check the metadata of ``resource`` (blocking nothing: an operation)."""
    url = metadata_url(resource)
    response = yield from get_document(url, ctx, what=f"resource metadata request {url}")
    what = f"the resource metadata {url}"
    body = metadata_document(response, ctx.redact, what=what)
    status = response.status_code
    if body.get("resource") != resource:
        shown = body.get("resource")
        shown = ctx.redact.clean(shown, 100) if isinstance(shown, str) else None
        raise MalformedResponse(
            f"{what} describes resource {shown!r}, not {resource!r} (RFC 9728 §3.3 requires"
            " them to be identical): refused, it could send the token elsewhere",
            status_code=status,
        )
    servers = body.get("authorization_servers")
    if (
        not isinstance(servers, list)
        or not servers
        or not all(isinstance(s, str) and s for s in servers)
    ):
        raise MalformedResponse(f"{what} names no authorization_servers", status_code=status)
    for server in servers:
        try:
            check_endpoint_url(
                server,
                what="an authorization server of the resource",
                allow_insecure_http=ctx.allow_insecure_http,
            )
        except ConfigError as exc:
            raise MalformedResponse(f"{what}: {exc}", status_code=status) from None
    return ProtectedResource(resource, tuple(servers), body)
