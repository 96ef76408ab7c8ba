"""``/admin/clients``: clients as RFC 7591 client metadata, through the registration rules."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from starlette.requests import Request

from ..client_metadata import (
    MetadataError,
    changes_from_metadata,
    issued_metadata,
    metadata_of,
    refusal,
    spec_from_metadata,
)
from ..context import ServerContext
from ..registration import RegistrationError, Registry
from ..store import ClientExists, UnknownClient
from ._http import AdminError, admin_handler, json_body

__all__ = ["ROUTES"]

MAX_GRACE_PERIOD = 30 * 86400


def _registry(ctx: ServerContext) -> Registry:
    return Registry(ctx.store, ctx.settings, door="admin")


def _checked(call: Any) -> Any:
    """Run a registration, its refusals as the admin API's errors."""
    try:
        return call()
    except RegistrationError as exc:
        raise AdminError(400, "invalid_client_metadata", str(refusal(exc))) from None
    except MetadataError as exc:
        raise AdminError(400, "invalid_client_metadata", str(exc)) from None
    except UnknownClient:
        raise AdminError(404, "not_found", "no client with that id") from None
    except ClientExists:
        raise AdminError(409, "client_exists", "a client with that id exists") from None


@admin_handler
def list_clients(ctx: ServerContext, request: Request) -> Any:
    return {"clients": [metadata_of(c) for c in ctx.store.list_clients()]}


@admin_handler
def create_client(ctx: ServerContext, request: Request, body: bytes) -> Any:
    document = json_body(body)
    client_id = document.get("client_id") if isinstance(document, dict) else None
    if client_id is None:
        client_id = "client-" + secrets.token_hex(8)
    elif not isinstance(client_id, str):
        raise AdminError(400, "invalid_client_metadata", "client_id must be a string")
    issued = _checked(
        lambda: _registry(ctx).create(spec_from_metadata(document, client_id=client_id))
    )
    return 201, issued_metadata(issued)


@admin_handler
def show_client(ctx: ServerContext, request: Request) -> Any:
    return _checked(lambda: metadata_of(ctx.store.get_client(request.path_params["client_id"])))


@admin_handler
def update_client(ctx: ServerContext, request: Request, body: bytes) -> Any:
    client_id = request.path_params["client_id"]

    def update() -> Any:
        changes, keys = changes_from_metadata(json_body(body))
        return metadata_of(_registry(ctx).update(client_id, changes, keys=keys))

    return _checked(update)


@admin_handler
def delete_client(ctx: ServerContext, request: Request) -> Any:
    _checked(lambda: _registry(ctx).delete(request.path_params["client_id"]))
    return 204, None


@admin_handler
def rotate_secret(ctx: ServerContext, request: Request, body: bytes) -> Any:
    document = json_body(body) if body.strip() else {}
    grace = document.get("grace_period") if isinstance(document, dict) else None
    if grace is not None and (
        isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE_PERIOD
    ):
        raise AdminError(400, "invalid_request", f"grace_period: 0 to {MAX_GRACE_PERIOD} seconds")
    client_id = request.path_params["client_id"]
    issued = _checked(
        lambda: _registry(ctx).rotate_secret(
            client_id, timedelta(seconds=grace) if grace is not None else None
        )
    )
    return issued_metadata(issued)


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/admin/clients", list_clients),
    ("POST", "/admin/clients", create_client),
    ("GET", "/admin/clients/{client_id}", show_client),
    ("PATCH", "/admin/clients/{client_id}", update_client),
    ("DELETE", "/admin/clients/{client_id}", delete_client),
    ("POST", "/admin/clients/{client_id}/rotate-secret", rotate_secret),
]
