"""Flask integration: ``@require_scopes("read")`` on a view; the verified token on ``flask.g``.

::

    from authkestra.resource import JWTVerifier
    from authkestra.resource.flask import Authkestra, require_scopes

    app = Flask(__name__)
    Authkestra(app, verifier=JWTVerifier(issuer=..., audience=...))

    @app.get("/orders")
    @require_scopes("orders:read")
    def orders():
        return {"caller": g.access_token.client_id}

Refusals follow RFC 6750 as in the other integrations (401 ``invalid_token``, 403
``insufficient_scope`` with the scope, 400 ``invalid_request``, 503 when the issuer
cannot be reached); a DPoP-bound token needs its proof. The verifier comes from
``Authkestra(app, verifier=...)`` or ``app.config["AUTHKESTRA_VERIFIER"]`` (checked
when the extension is set up, not at the first request). The API's RFC 9728 metadata is
served as by the ASGI middleware (built from the verifier when it names one issuer and
one audience; ``resource_metadata=False`` for none), and named in every challenge.
Async views (``flask[async]``) are protected the same way.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from ..errors import AuthError, ConfigError
from ._guard import Guard
from ._integration import TokenVerifier, check_scopes, scope_names
from .dpop import DPoPChecker
from .presentation import scope_from_wsgi
from .protected_resource import ResourceMetadata

__all__ = ["CONFIG_KEY", "EXTENSION_KEY", "Authkestra", "require_scopes"]

#: Where the extension keeps itself: ``app.extensions["authkestra"]``.
EXTENSION_KEY = "authkestra"
#: The config key a verifier may be given under instead of ``verifier=``.
CONFIG_KEY = "AUTHKESTRA_VERIFIER"

View = TypeVar("View", bound=Callable[..., Any])


class Authkestra:
    """The Flask extension: the verifier, the DPoP checker, the resource metadata."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        verifier: TokenVerifier | None = None,
        realm: str | None = None,
        dpop: DPoPChecker | None = None,
        resource_metadata: ResourceMetadata | bool | None = None,
    ) -> None:
        self.verifier = verifier
        self._options: dict[str, Any] = {
            "realm": realm,
            "dpop": dpop,
            "resource_metadata": resource_metadata,
        }
        self.guard: Guard | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set ``app`` up: its verifier checked now, the metadata route added."""
        verifier = self.verifier or app.config.get(CONFIG_KEY)
        if verifier is None or not callable(getattr(verifier, "verify_sync", None)):
            raise ConfigError(
                f"Authkestra(app): give verifier= or app.config[{CONFIG_KEY!r}] (a JWTVerifier"
                " or IntrospectionVerifier)"
            )
        self.verifier = verifier
        self.guard = Guard(verifier, **self._options)
        metadata = self.guard.metadata
        if metadata is not None:

            def resource_metadata() -> Response:
                return Response(
                    metadata.body,
                    mimetype="application/json",
                    headers={"Cache-Control": "public, max-age=3600"},
                )

            app.add_url_rule(
                metadata.path, "authkestra_resource_metadata", resource_metadata, methods=["GET"]
            )
        app.extensions[EXTENSION_KEY] = self

    def refuse(self, required: tuple[str, ...]) -> Response | None:
        """None, with the verified token on ``g.access_token``; or the refusal to send."""
        guard = self.guard
        assert guard is not None  # set by init_app, which put this extension on the app
        presentation = None
        error: AuthError | None = None
        try:
            presentation = guard.presentation(scope_from_wsgi(request.environ))
            if presentation is not None:
                access = guard.verify_sync(presentation)
                check_scopes(access, required)
                g.access_token = access
                return None
        except AuthError as exc:
            error = exc
        scheme = presentation.scheme if presentation is not None else "Bearer"
        status, body, headers = guard.refusal(error, required, scheme)
        return Response(
            json.dumps(body), status=status, mimetype="application/json", headers=headers
        )


def require_scopes(*scopes: str) -> Callable[[View], View]:
    """Decorate a view: it runs only for a verified token with every one of ``scopes``
    (``g.access_token`` holds it). Each scope is a non-empty string (ConfigError
    otherwise, here)."""
    required = scope_names(scopes, "require_scopes")

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                refused = _extension().refuse(required)
                return refused if refused is not None else await view(*args, **kwargs)

            return cast(View, async_wrapper)

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refused = _extension().refuse(required)
            return refused if refused is not None else view(*args, **kwargs)

        return cast(View, wrapper)

    return decorate


def _extension() -> Authkestra:
    extension = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(extension, Authkestra):
        raise ConfigError("require_scopes: set the app up first: Authkestra(app, verifier=...)")
    return extension
