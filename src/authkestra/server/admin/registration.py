"""``POST /admin/registration-tokens``: an initial access token for dynamic registration."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..._protocol.scope import is_scope_token
from ..context import ServerContext
from ..registration_tokens import MAX_LIFETIME, mint_initial_token
from ._http import AdminError, admin_handler, json_body

__all__ = ["ROUTES", "issue_initial_token"]

DEFAULT_LIFETIME = 86400


def issue_initial_token(
    ctx_keys: Any, settings: Any, *, scope: object, audience: object, expires_in: object
) -> dict[str, Any]:
    """An initial access token allowing clients with at most ``scope`` and ``audience``;
    ValueError naming the field refused. Shared by the admin API and the CLI."""
    if not isinstance(scope, str) or not all(is_scope_token(s) for s in scope.split()):
        raise ValueError("scope: a space-separated string of scope tokens")
    if not isinstance(audience, list) or not all(
        isinstance(a, str) and a and " " not in a for a in audience
    ):
        raise ValueError("audience: a list of URIs")
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or not 1 <= expires_in <= MAX_LIFETIME
    ):
        raise ValueError(f"expires_in: 1 to {MAX_LIFETIME} seconds")
    endpoint = settings.endpoint("/register")
    token, grant = mint_initial_token(
        ctx_keys,
        issuer=settings.effective_issuer(),
        endpoint=endpoint,
        scopes=scope.split(),
        audiences=audience,
        lifetime=expires_in,
    )
    return {
        "initial_access_token": token,
        "expires_at": grant.expires_at,
        "scope": " ".join(grant.scopes),
        "audience": list(grant.audiences),
        "registration_endpoint": endpoint,
    }


@admin_handler
def create_registration_token(ctx: ServerContext, request: Request, body: bytes) -> Any:
    document = json_body(body) if body.strip() else {}
    if not isinstance(document, dict):
        raise AdminError(400, "invalid_request", "the body must be a JSON object")
    try:
        answer = issue_initial_token(
            ctx.keys,
            ctx.settings,
            scope=document.get("scope", ""),
            audience=document.get("audience", []),
            expires_in=document.get("expires_in", DEFAULT_LIFETIME),
        )
    except ValueError as exc:
        raise AdminError(400, "invalid_request", str(exc)) from None
    return 201, answer


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/admin/registration-tokens", create_registration_token),
]
