"""An in-process issuer: tokens with the claims a test chooses, and the endpoints that make
a real ``JWTVerifier`` accept them and a real ``ClientCredentialsFlow`` obtain them."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx

from .._protocol.client_auth import decode_basic_credentials
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..flow.client_credentials import ClientCredentialsFlow
    from ..resource.verifier import JWTVerifier

__all__ = ["LocalIssuer"]


class LocalIssuer:
    """A signing key and an issuer identifier, served through an ``httpx`` transport.

    Nothing listens on a port: :meth:`transport` answers the issuer's metadata
    (RFC 8414), its JWKS and a token endpoint (the Client Credentials grant) in process,
    and :meth:`verifier` and :meth:`flow` are the library's own classes wired to it.

    Args:
        issuer: the issuer identifier (``iss`` of its tokens).
        alg: ES256 (default), EdDSA, RS256 or another asymmetric algorithm.
        clients: ``{client_id: secret}`` the token endpoint accepts (any client with any
            secret when None, for tests of client code that do not test the secret).
        scopes: the scopes the token endpoint grants when a request asks for none.
        token_ttl: the lifetime of the tokens the token endpoint issues.
    """

    def __init__(
        self,
        issuer: str = "https://issuer.authkestra.test",
        *,
        alg: str = "ES256",
        clients: Mapping[str, str] | None = None,
        scopes: Iterable[str] = (),
        token_ttl: int = 300,
    ) -> None:
        if not issuer.startswith("https://") or issuer.endswith("/"):
            raise ConfigError("issuer: an https URL without a trailing slash")
        self.issuer = issuer
        self.alg = alg
        self.kid = secrets.token_hex(6)
        self._key = _generate_key(alg, self.kid)
        self.clients = dict(clients) if clients is not None else None
        self.default_scopes = tuple(scopes)
        self.token_ttl = token_ttl
        self._lock = threading.Lock()
        #: Every token request the token endpoint answered: (client_id, form).
        self.token_requests: list[tuple[str, dict[str, list[str]]]] = []

    # -- tokens --------------------------------------------------------------------------

    def token(
        self,
        *,
        scopes: Iterable[str] = (),
        audience: str | Iterable[str] = "https://api.authkestra.test/",
        expires_in: int = 300,
        client_id: str = "test-client",
        subject: str | None = None,
        typ: str = "at+jwt",
        **claims: Any,
    ) -> str:
        """An RFC 9068 access token signed by this issuer, with the claims given.

        ``expires_in`` may be negative (an expired token); any other claim can be set or
        overridden with a keyword (``jti=``, ``nbf=``, ``cnf=``...), or removed with None.
        """
        now = int(time.time())
        audiences = [audience] if isinstance(audience, str) else list(audience)
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject or client_id,
            "client_id": client_id,
            "aud": audiences[0] if len(audiences) == 1 else audiences,
            "iat": now,
            "exp": now + expires_in,
            "jti": secrets.token_urlsafe(12),
        }
        scope = " ".join(scopes)
        if scope:
            body["scope"] = scope
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        from .._jose.signing import sign_jwt

        return sign_jwt({"alg": self.alg, "kid": self.kid, "typ": typ}, body, self._key)

    def jwks(self) -> dict[str, Any]:
        """The issuer's public keys, as its JWKS endpoint serves them."""
        public = {**self._key.as_dict(private=False), "kid": self.kid, "alg": self.alg}
        return {"keys": [public]}

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
        }

    # -- the endpoints ---------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """An ``httpx`` transport answering the issuer's metadata, JWKS and token endpoint."""
        return httpx.MockTransport(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if not url.startswith(self.issuer + "/"):
            return httpx.Response(404, json={"error": "not_found"})
        path = url[len(self.issuer) :].split("?", 1)[0]
        if request.method == "GET" and path in (
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ):
            return httpx.Response(200, json=self.metadata())
        if request.method == "GET" and path == "/jwks.json":
            return httpx.Response(200, json=self.jwks())
        if request.method == "POST" and path == "/token":
            return self._token_endpoint(request)
        return httpx.Response(404, json={"error": "not_found"})

    def _token_endpoint(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode("ascii", "replace"))
        client_id, secret = self._credentials(request, form)
        with self._lock:
            self.token_requests.append((client_id or "", form))
        if client_id is None or (
            self.clients is not None and self.clients.get(client_id) != secret
        ):
            return _oauth_error(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") != ["client_credentials"]:
            return _oauth_error(400, "unsupported_grant_type", "client_credentials only")
        scopes = " ".join(form.get("scope", [])).split() or list(self.default_scopes)
        targets = form.get("resource") or form.get("audience") or [f"{self.issuer}/"]
        token = self.token(
            scopes=scopes,
            audience=targets[0],
            expires_in=self.token_ttl,
            client_id=client_id,
        )
        answer: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
        }
        if scopes:
            answer["scope"] = " ".join(scopes)
        return httpx.Response(200, json=answer, headers={"Cache-Control": "no-store"})

    @staticmethod
    def _credentials(
        request: httpx.Request, form: dict[str, list[str]]
    ) -> tuple[str | None, str | None]:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            try:
                return decode_basic_credentials(authorization)
            except (ValueError, UnicodeDecodeError):
                return None, None
        ids, secrets_ = form.get("client_id", []), form.get("client_secret", [])
        return (ids[0] if ids else None), (secrets_[0] if secrets_ else None)

    # -- the library, wired to it ----------------------------------------------------------

    def verifier(
        self, audience: str | Iterable[str] = "https://api.authkestra.test/", **options: Any
    ) -> JWTVerifier:
        """A :class:`~authkestra.resource.JWTVerifier` for this issuer, fetching its keys
        in process."""
        from ..resource import JWTVerifier

        return JWTVerifier(
            issuer=self.issuer,
            audience=audience,
            http_client=httpx.Client(transport=self.transport()),
            async_http_client=httpx.AsyncClient(transport=self.transport()),
            **options,
        )

    def flow(
        self,
        client_id: str = "test-client",
        client_secret: str = "test-secret",  # noqa: S107 - what a test client sends
        **options: Any,
    ) -> ClientCredentialsFlow:
        """A :class:`~authkestra.ClientCredentialsFlow` whose token requests this issuer
        answers in process (``issuer`` discovery included)."""
        from ..flow.client_credentials import ClientCredentialsFlow

        options.setdefault("issuer", self.issuer)
        return ClientCredentialsFlow(
            client_id,
            client_secret,
            http_client=httpx.Client(transport=self.transport()),
            async_http_client=httpx.AsyncClient(transport=self.transport()),
            **options,
        )

    def __repr__(self) -> str:
        return f"LocalIssuer({self.issuer!r}, alg={self.alg!r})"


def _generate_key(alg: str, kid: str) -> Any:
    # Imported here: the pytest plugin loads this module in every test run of a project
    # that has authkestra installed, with or without the keys extra.
    try:
        from .._jose.keys import generate_key
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("LocalIssuer needs joserfc: pip install 'authkestra[keys]'") from None
    return generate_key(alg, {"kid": kid})


def _oauth_error(status: int, error: str, description: str) -> httpx.Response:
    return httpx.Response(status, json={"error": error, "error_description": description})
