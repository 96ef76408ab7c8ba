"""A small protected API for the demo: only valid tokens with ``reports:read`` get in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["TokenChecker", "create_demo_api"]

#: Checks a bearer token; returns its claims, or None when it is not valid.
TokenChecker = Callable[[str], Awaitable[dict[str, object] | None]]

REQUIRED_SCOPE = "reports:read"
INSUFFICIENT_SCOPE = f'Bearer error="insufficient_scope", scope="{REQUIRED_SCOPE}"'


def create_demo_api(check_token: TokenChecker) -> Starlette:
    """The demo API: ``GET /reports`` for callers whose token carries ``reports:read``."""

    async def reports(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims = await check_token(token) if scheme.lower() == "bearer" and token else None
        if claims is None:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        scopes = str(claims.get("scope", "")).split()
        if REQUIRED_SCOPE not in scopes:
            return JSONResponse(
                {"error": "insufficient_scope"},
                status_code=403,
                headers={"WWW-Authenticate": INSUFFICIENT_SCOPE},
            )
        return JSONResponse(
            {"caller": claims.get("client_id"), "reports": ["2026-Q3 revenue", "2026-Q3 churn"]}
        )

    return Starlette(routes=[Route("/reports", reports)])
