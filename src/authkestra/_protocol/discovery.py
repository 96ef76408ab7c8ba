"""Finding the token endpoint from the issuer's metadata (RFC 8414, OIDC Discovery)."""

from __future__ import annotations

import dataclasses
from typing import Any

from .._json import parse_json_object
from ..errors import ConfigError, MalformedResponse, ProviderError
from .actions import HttpRequest, HttpResponse, Operation
from .context import ProtocolContext
from .redact import Redactor
from .responses import raise_for_failure
from .retry import send_with_retries
from .urls import check_endpoint_url, metadata_urls

__all__ = ["ServerMetadata", "discover", "get_document", "metadata_document", "parse_metadata"]


@dataclasses.dataclass(frozen=True)
class ServerMetadata:
    """An authorization server's metadata (RFC 8414), as discovered and checked.

    ``issuer`` is exactly the configured one; ``endpoint`` is the endpoint the
    discovery was for (``token_endpoint``, ``jwks_uri``...), checked to be fit
    for credentials; ``raw`` is the whole document, for any other member.
    """

    issuer: str
    endpoint: str
    raw: dict[str, Any]

    @property
    def token_endpoint(self) -> str | None:
        value = self.raw.get("token_endpoint")
        return value if isinstance(value, str) else None

    @property
    def introspection_endpoint(self) -> str | None:
        value = self.raw.get("introspection_endpoint")
        return value if isinstance(value, str) else None

    @property
    def jwks_uri(self) -> str | None:
        value = self.raw.get("jwks_uri")
        return value if isinstance(value, str) else None


def parse_metadata(
    response: HttpResponse,
    *,
    issuer: str,
    url: str,
    allow_insecure_http: bool,
    redact: Redactor,
    require: str = "token_endpoint",
) -> ServerMetadata:
    """Validate metadata: a JSON object for *this* issuer with a usable ``require`` endpoint."""
    what = f"the metadata endpoint {url}"
    body = metadata_document(response, redact, what=what)
    status = response.status_code
    if body.get("issuer") != issuer:
        shown = redact.clean(body["issuer"], 100) if isinstance(body.get("issuer"), str) else None
        raise MalformedResponse(
            f"{what} describes issuer {shown!r}, not the configured {issuer!r}"
            " (RFC 8414 §3.3 requires them to be identical, trailing slash included)",
            status_code=status,
        )
    endpoint = body.get(require)
    if not isinstance(endpoint, str):
        raise MalformedResponse(f"{what} has no {require}", status_code=status)
    try:
        check_endpoint_url(
            endpoint, what=f"the discovered {require}", allow_insecure_http=allow_insecure_http
        )
    except ConfigError as exc:
        raise MalformedResponse(f"{what}: {exc}", status_code=status) from None
    return ServerMetadata(issuer=issuer, endpoint=endpoint, raw=body)


def metadata_document(response: HttpResponse, redact: Redactor, *, what: str) -> dict[str, Any]:
    """The JSON object a metadata answer holds, or the error saying what it is instead
    (an HTTP failure, a body over the limit, not a JSON object)."""
    raise_for_failure(response, redact, what=what)
    status = response.status_code
    if response.truncated:
        raise MalformedResponse(f"{what} sent a body over the size limit", status_code=status)
    try:
        return parse_json_object(response.body)
    except ValueError as exc:
        raise MalformedResponse(
            f"{what} sent invalid metadata: {exc}", status_code=status
        ) from None


#: The setting that names an endpoint directly, for the error that says to give it.
_SETTING_FOR = {
    "token_endpoint": "token_url",
    "jwks_uri": "jwks_url",
    "introspection_endpoint": "introspection_url",
}


def get_document(
    url: str, ctx: ProtocolContext, *, what: str, accept: str = "application/json"
) -> Operation[HttpResponse]:
    """``GET url`` with the context's retries and limits (a metadata document, a list)."""

    def request(deadline: float) -> HttpRequest:
        headers = (("Accept", accept), ("User-Agent", ctx.user_agent))
        return HttpRequest("GET", url, headers, None, deadline, ctx.max_body)

    return (yield from send_with_retries(request, ctx.policy, ctx.clock, what=what))


def discover(
    issuer: str, ctx: ProtocolContext, *, require: str = "token_endpoint"
) -> Operation[ServerMetadata]:
    """Fetch the issuer's metadata: RFC 8414 first, then OpenID Connect Discovery.

    A 404 (or 405/410) from the first location moves on to the next; any other
    failure is raised.
    """
    not_found: list[str] = []
    for url in metadata_urls(issuer):
        response = yield from get_document(url, ctx, what=f"metadata request {url}")
        if response.status_code in (404, 405, 410):
            not_found.append(url)
            continue
        return parse_metadata(
            response,
            issuer=issuer,
            url=url,
            allow_insecure_http=ctx.allow_insecure_http,
            redact=ctx.redact,
            require=require,
        )
    raise ProviderError(
        f"no authorization server metadata for issuer {issuer!r} (tried {', '.join(not_found)});"
        f" check the issuer or give {_SETTING_FOR.get(require, 'the URL')} instead",
        status_code=404,
    )
