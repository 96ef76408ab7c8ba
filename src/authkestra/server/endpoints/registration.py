"""Dynamic client registration: ``POST /register`` (RFC 7591) and ``GET/PUT/DELETE
/register/{client_id}`` (RFC 7592). Mounted only with the ``registration`` setting.

Registering needs an initial access token (see :mod:`..registration_tokens`), whose
scopes and audiences bound what the client may be given; a client that asks for no
scope or audience gets all it allows. Only confidential clients (a secret, keys or a
certificate), ``client_credentials`` only; the right to introspect and the enabled
state are the operator's, not the registrant's. Unknown metadata is ignored (RFC 7591
§2). The rules are :class:`~..registration.Registry`'s, with door ``registration``.

A registered client manages its registration with its registration access token:
read it, narrow it (PUT cannot widen scopes or audiences past what it has: that is the
operator's), delete it.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...errors import OAuthError
from ..client_metadata import (
    MetadataError,
    changes_from_metadata,
    issued_metadata,
    metadata_of,
    refusal,
    spec_from_metadata,
)
from ..context import ServerContext
from ..logs import audit, note_client
from ..registration import RegistrationError, Registry
from ..registration_tokens import new_registration_token, read_initial_token
from ..store import ClientExists, ClientRecord, UnknownClient
from ._common import (
    NO_STORE,
    bearer_token,
    check_request_line_and_headers,
    client_address,
    read_body,
)

__all__ = ["client_registration_endpoint", "register_endpoint"]

#: Metadata only the operator sets.
_OPERATOR_FIELDS = ("introspection", "enabled")
#: What a PUT may carry besides what it changes (RFC 7592 §2.2): checked, not applied.
_IDENTIFYING = ("client_id", "client_secret", "token_endpoint_auth_method", "grant_types")


class _Refused(Exception):
    def __init__(
        self, status: int, error: str, description: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.retry_after = retry_after

    def response(self) -> Response:
        headers = dict(NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = f'Bearer error="{self.error}"'
        if self.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(self.retry_after))
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


def _metadata_refused(description: str) -> _Refused:
    return _Refused(400, "invalid_client_metadata", description)


_BAD_TOKEN = _Refused(401, "invalid_token", "the access token is not valid here")


async def register_endpoint(request: Request) -> Response:
    """``POST /register``: a new client, with its secret and registration access token."""
    return await _serve(request, _register)


async def client_registration_endpoint(request: Request) -> Response:
    """``GET``, ``PUT``, ``DELETE /register/{client_id}``: the client's own registration."""
    return await _serve(request, _manage)


async def _serve(request: Request, handler: Callable[..., Response]) -> Response:
    ctx: ServerContext = request.app.state.ctx
    try:
        check_request_line_and_headers(request)
        body = b""
        if request.method in ("POST", "PUT"):
            body = await read_body(request, ctx.settings.max_body_bytes * 8)
        return await anyio.to_thread.run_sync(handler, ctx, request, body)
    except _Refused as refused:
        return refused.response()
    except OAuthError as error:  # the request line or headers refused (a query string...)
        return JSONResponse(
            {"error": error.error, "error_description": error.error_description},
            status_code=error.status_code,
            headers=NO_STORE,
        )


def _not_throttled(ctx: ServerContext, address: str) -> None:
    """429 with Retry-After while ``address`` is over its failure limit (wrong tokens count)."""
    retry_after = ctx.limiter.blocked(address)
    if retry_after is not None:
        raise _Refused(
            429,
            "temporarily_unavailable",
            "too many failed attempts from this address: retry after the time in Retry-After",
            retry_after=retry_after,
        )


def _bearer(request: Request) -> str:
    token = bearer_token(request)
    if token is None:
        raise _Refused(401, "invalid_token", "send the token as Authorization: Bearer")
    return token


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _metadata_refused("the body must be a JSON object of client metadata") from None
    if not isinstance(document, dict):
        raise _metadata_refused("the body must be a JSON object of client metadata")
    for name in _OPERATOR_FIELDS:
        if name in document:
            raise _metadata_refused(f"{name}: set by the operator, not at registration")
    return document


def _within(asked: tuple[str, ...], allowed: tuple[str, ...], name: str, whose: str) -> None:
    extra = [value for value in asked if value not in allowed]
    if extra:
        raise _metadata_refused(
            f"{name}: {' '.join(extra)[:200]} is beyond what {whose} allows"
            f" ({' '.join(allowed) or 'none'})"
        )


def _register(ctx: ServerContext, request: Request, body: bytes) -> Response:
    address = client_address(request)
    _not_throttled(ctx, address)
    grant = read_initial_token(
        _bearer(request),
        keys=ctx.keys,
        issuer=ctx.issuer,
        endpoint=ctx.settings.endpoint("/register"),
    )
    if grant is None or ctx.revocations.is_revoked(grant.jti):
        ctx.limiter.record_failure(address)
        audit("registration_refused", reason="invalid initial access token", address=address)
        raise _BAD_TOKEN
    document = _json_object(body)
    client_id = "dyn-" + secrets.token_hex(12)  # RFC 7591: the server picks the id
    try:
        spec = spec_from_metadata(
            {k: v for k, v in document.items() if k != "client_id"},
            client_id=client_id,
            ignore_unknown=True,
        )
    except MetadataError as exc:
        raise _metadata_refused(str(exc)) from None
    _within(tuple(spec.scopes), grant.scopes, "scope", "the initial access token")
    _within(tuple(spec.audiences), grant.audiences, "audience", "the initial access token")
    spec = _with_defaults(spec, grant.scopes, grant.audiences)
    token = new_registration_token()
    try:
        issued = Registry(ctx.store, ctx.settings, door="registration").create(
            spec, registration_token_hash=ctx.hasher.hash(token)
        )
    except RegistrationError as exc:
        raise _metadata_refused(str(refusal(exc))) from None
    except ClientExists:  # 96 random bits taken: not in this universe
        raise _Refused(409, "invalid_client_metadata", "retry the registration") from None
    note_client(client_id, authenticated=True)
    audit("initial_access_token_used", jti=grant.jti, client_id=client_id)
    answer = issued_metadata(issued)
    answer["registration_access_token"] = token
    answer["registration_client_uri"] = _client_uri(ctx, client_id)
    return JSONResponse(answer, status_code=201, headers=NO_STORE)


def _with_defaults(spec: Any, scopes: tuple[str, ...], audiences: tuple[str, ...]) -> Any:
    """No scope or audience asked: all the initial access token allows."""
    import dataclasses

    return dataclasses.replace(
        spec, scopes=spec.scopes or scopes, audiences=spec.audiences or audiences
    )


def _client_uri(ctx: ServerContext, client_id: str) -> str:
    return ctx.settings.endpoint(f"/register/{client_id}")


def _registered_client(ctx: ServerContext, request: Request) -> ClientRecord:
    """The client of the path, if the registration access token is its; else 401 (the same
    answer, at the same cost, for a client that does not exist)."""
    token = _bearer(request)
    client = ctx.store.find_client(request.path_params["client_id"])
    hashes = [client.registration_token_hash] if client and client.registration_token_hash else []
    if not ctx.hasher.matches(token, hashes) or client is None:
        ctx.limiter.record_failure(client_address(request))
        raise _BAD_TOKEN
    note_client(client.client_id, authenticated=True)
    return client


def _manage(ctx: ServerContext, request: Request, body: bytes) -> Response:
    _not_throttled(ctx, client_address(request))
    client = _registered_client(ctx, request)
    registry = Registry(ctx.store, ctx.settings, door="registration")
    if request.method == "DELETE":
        registry.delete(client.client_id)
        return Response(status_code=204, headers=NO_STORE)
    if request.method == "PUT":
        client = _update(registry, client, _json_object(body))
    answer = metadata_of(client)
    answer.pop("secrets", None)
    answer["registration_client_uri"] = _client_uri(ctx, client.client_id)
    return JSONResponse(answer, headers=NO_STORE)


def _update(registry: Registry, client: ClientRecord, document: dict[str, Any]) -> ClientRecord:
    """RFC 7592 §2.2: the client's metadata as it should be, narrower or equal."""
    if document.get("client_id") != client.client_id:
        raise _metadata_refused("client_id: the body must carry this client's id")
    method = document.get("token_endpoint_auth_method", client.auth_method)
    if method != client.auth_method:
        raise _metadata_refused("token_endpoint_auth_method: cannot be changed")
    changeable = {k: v for k, v in document.items() if k not in _IDENTIFYING}
    try:
        changes, keys = changes_from_metadata(
            {k: v for k, v in changeable.items() if k in _PUT_FIELDS}
        )
    except MetadataError as exc:
        raise _metadata_refused(str(exc)) from None
    given = changes.given()
    _within(tuple(given.get("scopes", ())), client.scopes, "scope", "the registration")
    _within(tuple(given.get("audiences", ())), client.audiences, "audience", "the registration")
    try:
        return registry.update(client.client_id, changes, keys=keys)
    except RegistrationError as exc:
        raise _metadata_refused(str(refusal(exc))) from None
    except UnknownClient:
        raise _BAD_TOKEN from None


_PUT_FIELDS = {
    "client_name",
    "scope",
    "default_scope",
    "audience",
    "access_token_lifetime",
    "jwks",
    "jwks_uri",
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
}
