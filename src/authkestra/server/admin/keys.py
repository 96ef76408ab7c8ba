"""``/admin/keys``: the published signing keys, rotation, and withdrawing one at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request

from ..context import ServerContext
from ..keys import ALGORITHMS, key_listing, longest_token_lifetime
from ._http import AdminError, admin_handler, json_body

__all__ = ["ROUTES"]

MAX_SECONDS = 30 * 86400


@admin_handler
def list_keys(ctx: ServerContext, request: Request) -> Any:
    return {"keys": key_listing(ctx.store.signing_keys(private=False))}


def _seconds(document: dict[str, Any], name: str, default: int) -> int:
    value = document.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SECONDS:
        raise AdminError(400, "invalid_request", f"{name}: 0 to {MAX_SECONDS} seconds")
    return value


@admin_handler
def rotate_keys(ctx: ServerContext, request: Request, body: bytes) -> Any:
    document = json_body(body) if body.strip() else {}
    if not isinstance(document, dict):
        raise AdminError(400, "invalid_request", "the body must be a JSON object")
    alg = document.get("alg", ctx.settings.signing_alg)
    if alg not in ALGORITHMS:
        raise AdminError(400, "invalid_request", f"alg: one of {', '.join(ALGORITHMS)}")
    keep = _seconds(document, "keep_old_for", longest_token_lifetime(ctx.store, ctx.settings))
    ahead = _seconds(document, "publish_ahead", 120)
    kid = ctx.keys.rotate(
        keep_old_for=timedelta(seconds=keep),
        alg=alg,
        publish_ahead=timedelta(seconds=ahead),
        door="admin",
    )
    return 201, {"kid": kid, "alg": alg, "publish_ahead": ahead, "keep_old_for": keep}


@admin_handler
def withdraw_key(ctx: ServerContext, request: Request) -> Any:
    kid = request.path_params["kid"]
    try:
        replacement = ctx.keys.withdraw(
            kid,
            keep_others_for=timedelta(seconds=longest_token_lifetime(ctx.store, ctx.settings)),
            door="admin",
        )
    except KeyError:
        raise AdminError(404, "not_found", "no published key with that kid") from None
    return {"withdrawn": kid, "signing_now": replacement}


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/admin/keys", list_keys),
    ("POST", "/admin/keys/rotate", rotate_keys),
    ("DELETE", "/admin/keys/{kid}", withdraw_key),
]
