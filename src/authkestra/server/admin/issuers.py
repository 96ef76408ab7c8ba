"""``/admin/issuers``: the external issuers whose tokens authenticate federated clients."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..context import ServerContext
from ..issuers import IssuerError, IssuerRegistry, issuer_document
from ..store import UnknownIssuer
from ._http import AdminError, admin_handler, json_body

__all__ = ["ROUTES"]

_FIELDS = {"name", "issuer", "jwks_url", "audience", "max_lifetime"}


def _registry(ctx: ServerContext) -> IssuerRegistry:
    return IssuerRegistry(ctx.store, ctx.settings, door="admin")


@admin_handler
def list_issuers(ctx: ServerContext, request: Request) -> Any:
    return {"issuers": [issuer_document(record) for record in ctx.store.issuers()]}


@admin_handler
def add_issuer(ctx: ServerContext, request: Request, body: bytes) -> Any:
    document = json_body(body)
    if not isinstance(document, dict):
        raise AdminError(400, "invalid_request", "the body must be a JSON object")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise AdminError(400, "invalid_request", f"unknown member: {unknown[0][:64]}")
    try:
        record = _registry(ctx).add(
            document.get("name"),
            document.get("issuer"),
            jwks_url=document.get("jwks_url"),
            audience=document.get("audience"),
            max_lifetime=document.get("max_lifetime"),
        )
    except IssuerError as exc:
        status = 409 if "trusted already" in str(exc) else 400
        raise AdminError(status, "invalid_request", str(exc)) from None
    return 201, issuer_document(record)


@admin_handler
def remove_issuer(ctx: ServerContext, request: Request) -> Any:
    try:
        _registry(ctx).remove(request.path_params["name"])
    except UnknownIssuer:
        raise AdminError(404, "not_found", "no trusted issuer of that name") from None
    except IssuerError as exc:
        raise AdminError(409, "conflict", str(exc)) from None
    return 204, None


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/admin/issuers", list_issuers),
    ("POST", "/admin/issuers", add_issuer),
    ("DELETE", "/admin/issuers/{name}", remove_issuer),
]
