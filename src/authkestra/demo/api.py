"""A small protected API for the demo: only valid tokens with ``reports:read`` get in."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..resource import TokenVerifier
from ..resource.access_token import AccessToken
from ..resource.asgi import BearerTokenMiddleware

__all__ = ["REQUIRED_SCOPE", "create_demo_api"]

REQUIRED_SCOPE = "reports:read"


async def reports(request: Request) -> Response:
    token: AccessToken = request.state.access_token  # set by BearerTokenMiddleware
    return JSONResponse(
        {"caller": token.client_id, "reports": ["2026-Q3 revenue", "2026-Q3 churn"]}
    )


def create_demo_api(verifier: TokenVerifier) -> BearerTokenMiddleware:
    """The demo API: ``GET /reports``, behind a bearer-token check for ``reports:read``."""
    app = Starlette(routes=[Route("/reports", reports)])
    return BearerTokenMiddleware(app, verifier, scopes=[REQUIRED_SCOPE])
