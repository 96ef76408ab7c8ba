"""Django and Django REST Framework: a middleware, ``@require_scopes`` for views, and DRF
authentication and permission classes.

Settings (``settings.AUTHKESTRA``)::

    AUTHKESTRA = {
        "ISSUER": "https://auth.example.com",        # a JWTVerifier is made from these...
        "AUDIENCE": "https://orders.example.com",
        # "VERIFIER": my_verifier,                   # ...or give one (or its dotted path)
        # "REALM": "orders", "RESOURCE_METADATA": False,
    }
    MIDDLEWARE = [..., "authkestra.resource.django.AuthkestraMiddleware"]

Plain views::

    @require_scopes("orders:read")
    def orders(request):
        return JsonResponse({"caller": request.access_token.client_id})

DRF::

    class Orders(APIView):
        authentication_classes = [AuthkestraAuthentication]
        permission_classes = [HasScopes]
        required_scopes = ["orders:read"]

The middleware verifies the token of every request that presents one (``request.
access_token``, None without one) and refuses a bad one per RFC 6750; it serves the
RFC 9728 metadata. ``require_scopes`` refuses a view's request without a verified token
(401) or the scopes (403), verifying the token itself when the middleware is not
installed. Sync and async views both work. WSGI and ASGI give no TLS client certificate
here: certificate-bound tokens are refused.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from ..errors import AuthError, ConfigError, InsufficientScope
from ._guard import Guard
from ._integration import check_scopes, scope_names
from .access_token import AccessToken
from .presentation import scope_from_wsgi

__all__ = [
    "AuthkestraAuthentication",
    "AuthkestraMiddleware",
    "HasScopes",
    "exception_handler",
    "require_scopes",
]

View = TypeVar("View", bound=Callable[..., Any])


class _Refused(Exception):
    """A token that did not verify, and the scheme it came in (for the challenge)."""

    def __init__(self, error: AuthError, scheme: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.scheme = scheme


class _Setup(Guard):
    """What ``settings.AUTHKESTRA`` says, made once: the verifier, DPoP, the metadata."""

    def __init__(self, config: dict[str, Any]) -> None:
        verifier = config.get("VERIFIER")
        if isinstance(verifier, str):
            verifier = import_string(verifier)
            verifier = (
                verifier() if callable(verifier) and not hasattr(verifier, "verify") else verifier
            )
        if verifier is None:
            issuer, audience = config.get("ISSUER"), config.get("AUDIENCE")
            if not issuer or not audience:
                raise ConfigError(
                    "settings.AUTHKESTRA needs VERIFIER, or ISSUER and AUDIENCE (a JWTVerifier"
                    " is made from them)"
                )
            from .verifier import JWTVerifier

            options = {k.lower(): v for k, v in config.get("OPTIONS", {}).items()}
            verifier = JWTVerifier(issuer=issuer, audience=audience, **options)
        if not callable(getattr(verifier, "verify_sync", None)):
            raise ConfigError("settings.AUTHKESTRA VERIFIER is not a verifier (no verify_sync)")
        super().__init__(
            verifier,
            realm=config.get("REALM"),
            resource_metadata=config.get("RESOURCE_METADATA"),
        )

    def verify(self, request: HttpRequest) -> AccessToken | None:
        """The request's verified token (None without one); :class:`_Refused` (the error
        and the scheme the token came in) when it does not verify."""
        presentation = self.presentation(scope_from_wsgi(request.META))
        if presentation is None:
            return None
        try:
            return self.verify_sync(presentation)
        except AuthError as exc:
            raise _Refused(exc, presentation.scheme) from None

    def refuse(
        self, error: AuthError | None, required: tuple[str, ...] = (), scheme: str = "Bearer"
    ) -> HttpResponse:
        status, body, headers = self.refusal(error, required, scheme)
        response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
        for name, value in headers.items():
            response[name] = value
        return response


_setups: dict[int, _Setup] = {}
_lock = threading.Lock()


def setup() -> _Setup:
    """The setup of ``settings.AUTHKESTRA``, made on first use and kept."""
    config = getattr(settings, "AUTHKESTRA", None)
    if not isinstance(config, dict):
        raise ConfigError("settings.AUTHKESTRA is missing: a dict with ISSUER and AUDIENCE")
    key = id(config)
    found = _setups.get(key)
    if found is None:
        with _lock:
            found = _setups.get(key)
            if found is None:
                found = _setups[key] = _Setup(config)
    return found


_ACCESS = "access_token"
_CHECKED = "_authkestra_checked"


def _check(request: HttpRequest) -> HttpResponse | None:
    """Verify the request's token once (the middleware, or a view's decorator)."""
    if getattr(request, _CHECKED, False):
        return None
    chosen = setup()
    try:
        access = chosen.verify(request)
    except _Refused as refused:
        return chosen.refuse(refused.error, scheme=refused.scheme)
    except AuthError as exc:  # malformed Authorization: the error carries its scheme
        return chosen.refuse(exc)
    setattr(request, _ACCESS, access)
    setattr(request, _CHECKED, True)
    return None


class AuthkestraMiddleware:
    """Verifies the token of every request that presents one; serves the RFC 9728 metadata."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        setup()  # a wrong AUTHKESTRA setting stops the server at start-up

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._async_call(request)
        early = self._early(request)
        return early if early is not None else self.get_response(request)

    async def _async_call(self, request: HttpRequest) -> Any:
        early = await sync_to_async(self._early, thread_sensitive=False)(request)
        return early if early is not None else await self.get_response(request)

    def _early(self, request: HttpRequest) -> HttpResponse | None:
        metadata = setup().metadata
        if metadata is not None and request.path == metadata.path and request.method == "GET":
            response = HttpResponse(metadata.body, content_type="application/json")
            response["Cache-Control"] = "public, max-age=3600"
            return response
        return _check(request)


def require_scopes(*scopes: str) -> Callable[[View], View]:
    """Decorate a Django view (sync or async): it runs only for a verified token with every
    one of ``scopes`` (``request.access_token``)."""
    required = scope_names(scopes, "require_scopes")

    def verdict(request: HttpRequest) -> HttpResponse | None:
        refused = _check(request)
        if refused is not None:
            return refused
        access = getattr(request, _ACCESS, None)
        if access is None:
            return setup().refuse(None, required)
        try:
            check_scopes(access, required)
        except AuthError as exc:
            return setup().refuse(exc, required)
        return None

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                refused = await sync_to_async(verdict, thread_sensitive=False)(request)
                return refused if refused is not None else await view(request, *args, **kwargs)

            return cast(View, async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refused = verdict(request)
            return refused if refused is not None else view(request, *args, **kwargs)

        return cast(View, wrapper)

    return decorate


# -- Django REST Framework -------------------------------------------------------------------

try:
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.permissions import BasePermission
except ImportError:  # DRF is optional: plain Django needs none of this
    BaseAuthentication = object
    BasePermission = object
    drf_exceptions = None


class TokenUser:
    """``request.user`` under :class:`AuthkestraAuthentication`: the calling client."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, access_token: AccessToken) -> None:
        self.access_token = access_token
        self.username = access_token.client_id or access_token.subject or ""

    def __str__(self) -> str:
        return self.username


class AuthkestraAuthentication(BaseAuthentication):  # type: ignore[misc]
    """DRF authentication: ``request.user`` a :class:`TokenUser`, ``request.auth`` the
    verified ``AccessToken``; 401 with an RFC 6750 challenge otherwise."""

    def authenticate(self, request: Any) -> tuple[TokenUser, AccessToken] | None:
        chosen = setup()
        try:
            access = chosen.verify(request._request)
        except (_Refused, AuthError) as exc:
            error = exc.error if isinstance(exc, _Refused) else exc
            request._request._authkestra_error = error
            raise drf_exceptions.AuthenticationFailed(str(error)) from None
        if access is None:
            return None
        return TokenUser(access), access

    def authenticate_header(self, request: Any) -> str:
        return setup().challenge(getattr(request._request, "_authkestra_error", None))


class InsufficientScopeDenied(drf_exceptions.PermissionDenied if drf_exceptions else Exception):  # type: ignore[misc]
    """403 for a token without the view's ``required_scopes`` (RFC 6750 §3.1)."""

    def __init__(self, required: tuple[str, ...]) -> None:
        super().__init__(f"the token lacks the scope(s) {' '.join(required)}")
        self.required = required


class HasScopes(BasePermission):  # type: ignore[misc]
    """DRF permission: the token has every scope in the view's ``required_scopes``."""

    def has_permission(self, request: Any, view: Any) -> bool:
        required = tuple(getattr(view, "required_scopes", ()))
        access = getattr(request, "auth", None)
        if not isinstance(access, AccessToken):
            raise drf_exceptions.NotAuthenticated("this resource needs an access token")
        try:
            check_scopes(access, required)
        except InsufficientScope:
            raise InsufficientScopeDenied(required) from None
        return True


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF's exception handler, with RFC 6750 on top: a 403 for missing scopes carries its
    ``WWW-Authenticate: Bearer error="insufficient_scope"`` challenge. Set it as
    ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``."""
    # Imported here: rest_framework.views reads the Django settings when it is imported.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, InsufficientScopeDenied):
        error = InsufficientScope(str(exc), required_scopes=exc.required)
        response["WWW-Authenticate"] = setup().challenge(error, exc.required)
        response.data = {"error": "insufficient_scope", "error_description": str(exc),
                         "scope": " ".join(exc.required)}  # fmt: skip
    return response
