"""``/admin/keys``: the published signing keys, rotation, and withdrawing one at once."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..context import ServerContext
from ..keys import ALGORITHMS, key_listing, rotate_keys, withdraw_key
from ._http import AdminError, admin_handler, json_body

__all__ = ["ROUTES"]

MAX_SECONDS = 30 * 86400


@admin_handler
def list_keys(ctx: ServerContext, request: Request) -> Any:
    return {"keys": key_listing(ctx.store.signing_keys(private=False))}


def _seconds(document: dict[str, Any], name: str, default: int | None) -> int | None:
    value = document.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SECONDS:
        raise AdminError(400, "invalid_request", f"{name}: 0 to {MAX_SECONDS} seconds")
    return value


@admin_handler
def rotate(ctx: ServerContext, request: Request, body: bytes) -> Any:
    document = json_body(body) if body.strip() else {}
    if not isinstance(document, dict):
        raise AdminError(400, "invalid_request", "the body must be a JSON object")
    alg = document.get("alg", ctx.settings.signing_alg)
    if alg not in ALGORITHMS:
        raise AdminError(400, "invalid_request", f"alg: one of {', '.join(ALGORITHMS)}")
    keep = _seconds(document, "keep_old_for", None)  # default: the longest token lifetime
    ahead = _seconds(document, "publish_ahead", 120)
    assert ahead is not None
    return 201, rotate_keys(
        ctx.keys, ctx.settings, alg=alg, keep_old_for=keep, publish_ahead=ahead, door="admin"
    )


@admin_handler
def withdraw(ctx: ServerContext, request: Request) -> Any:
    try:
        return withdraw_key(ctx.keys, ctx.settings, request.path_params["kid"], door="admin")
    except KeyError:
        raise AdminError(404, "not_found", "no published key with that kid") from None


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/admin/keys", list_keys),
    ("POST", "/admin/keys/rotate", rotate),
    ("DELETE", "/admin/keys/{kid}", withdraw),
]
