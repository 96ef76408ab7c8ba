"""How a request presents its token, and the check that the sender is the token's holder.

A token may be bound to a key (DPoP, RFC 9449: ``cnf.jkt``) or to a TLS client
certificate (RFC 8705: ``cnf["x5t#S256"]``). Either way a copy of the token
alone is not enough: the request must also carry a DPoP proof signed with that
key, or come over a TLS connection with that certificate. Every integration
(the ASGI middleware, the Starlette backend, the FastAPI dependency) checks
through :func:`check_holder`.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import anyio.to_thread

from ..errors import InvalidToken
from ..tls import ClientCertificate, presented_certificate
from .access_token import AccessToken
from .dpop import DPoPChecker, InvalidDPoPProof, bound_thumbprint
from .rfc6750 import MalformedAuthorization, authorization_token

__all__ = [
    "HOLDER_CHECKED_KEY",
    "Presentation",
    "certificate_thumbprint_bound",
    "check_holder",
    "check_holder_async",
    "request_path",
    "request_url",
]


#: Where a request's ASGI scope records what :func:`check_holder_async` accepted: the
#: scheme, token and DPoP proofs. Stacked integrations (the middleware and a FastAPI
#: dependency, or a router's dependency and a route's) see one scope per request; the
#: second would otherwise find the proof's ``jti`` already used.
HOLDER_CHECKED_KEY = "authkestra.holder_checked"


@dataclasses.dataclass(frozen=True, repr=False)
class Presentation:
    """What one request sent along with its token.

    The URL and the client certificate are read from the scope only when a bound
    token needs them: most requests carry plain bearer tokens.
    """

    scheme: str  # "Bearer" or "DPoP"
    token: str
    proofs: tuple[str, ...]
    method: str
    scope: Mapping[str, Any]

    @functools.cached_property
    def url(self) -> str | None:
        """The URL the request reached; None if its Host header is no authority."""
        return request_url(self.scope)

    @functools.cached_property
    def certificate(self) -> ClientCertificate | None:
        """The client certificate of the request's TLS connection, if any."""
        return presented_certificate(self.scope)

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> Presentation | None:
        """From an ASGI scope; None when it has no ``Authorization: Bearer|DPoP`` token.

        :class:`~authkestra.resource.rfc6750.MalformedAuthorization` (400
        ``invalid_request``) for more than one ``Authorization`` header, or a token
        with whitespace inside.
        """
        authorizations: list[str] = []
        proofs: list[str] = []
        for name, value in scope.get("headers", []):
            lowered = name.lower()
            if lowered == b"authorization":
                authorizations.append(value.decode("latin-1"))
            elif lowered == b"dpop":
                proofs.append(value.decode("latin-1"))
        if len(authorizations) > 1:
            # Which one was meant? Authorization is no list field: once at most (RFC 9110 §5.3).
            raise MalformedAuthorization("more than one Authorization header was sent")
        presented = authorization_token(authorizations[0] if authorizations else None)
        if presented is None:
            return None
        method = "GET" if scope["type"] == "websocket" else str(scope.get("method", "GET"))
        return cls(
            scheme=presented[0],
            token=presented[1],
            proofs=tuple(proofs),
            method=method,
            scope=scope,
        )

    def __repr__(self) -> str:
        return f"Presentation({self.scheme}, {self.method})"


def certificate_thumbprint_bound(access_token: AccessToken) -> str | None:
    """The ``cnf["x5t#S256"]`` of a certificate-bound token, or None; InvalidToken if malformed."""
    cnf = access_token.claims.get("cnf")
    if not isinstance(cnf, Mapping) or "x5t#S256" not in cnf:
        return None  # a malformed cnf itself is refused by the DPoP check
    value = cnf["x5t#S256"]
    if not isinstance(value, str) or not value:
        raise InvalidToken("the token's cnf x5t#S256 is not a string")
    return value


def check_holder(access: AccessToken, presentation: Presentation, dpop: DPoPChecker) -> None:
    """InvalidToken unless the request shows it comes from the token's holder.

    A DPoP-bound token must come with the DPoP scheme and a valid proof (and an
    unbound token may not use the DPoP scheme); a certificate-bound token must
    come over a TLS connection with that very certificate.
    """
    _check_dpop(access, presentation, dpop)
    bound = certificate_thumbprint_bound(access)
    if bound is None:
        return
    certificate = presentation.certificate
    if certificate is None:
        raise InvalidToken("the token is bound to a TLS client certificate: none was presented")
    if not hmac.compare_digest(certificate.thumbprint.encode(), bound.encode()):
        raise InvalidToken("the token is bound to another TLS client certificate")


async def check_holder_async(
    access: AccessToken, presentation: Presentation, dpop: DPoPChecker
) -> None:
    """:func:`check_holder` for async code, once per request.

    A shared replay store's I/O runs off the event loop. What passed is recorded in
    the request's scope (:data:`HOLDER_CHECKED_KEY`), and the same token with the
    same proofs on that request is not checked again: its proof would be a replay.
    """
    # What was checked, by which checker, against which binding: a second integration
    # with a checker of its own (other settings, another replay store) checks again.
    checked = (
        presentation.scheme,
        presentation.token,
        presentation.proofs,
        id(dpop),
        access.claims.get("cnf"),
    )
    if presentation.scope.get(HOLDER_CHECKED_KEY) == checked:
        return
    if presentation.scheme == "DPoP" and getattr(dpop.replay, "blocking", False):
        await anyio.to_thread.run_sync(check_holder, access, presentation, dpop)
    else:
        check_holder(access, presentation, dpop)
    if isinstance(presentation.scope, MutableMapping):
        presentation.scope[HOLDER_CHECKED_KEY] = checked


def _check_dpop(access: AccessToken, presentation: Presentation, dpop: DPoPChecker) -> None:
    bound = bound_thumbprint(access) is not None
    if presentation.scheme == "Bearer":
        if bound:
            raise InvalidToken("the token is DPoP-bound: present it with the DPoP scheme")
        return
    if not bound:
        raise InvalidToken("the token is not DPoP-bound: present it with the Bearer scheme")
    if len(presentation.proofs) > 1:
        raise InvalidDPoPProof("more than one DPoP proof was sent")
    if presentation.url is None:
        raise InvalidDPoPProof("the request's Host header is not a host name and port")
    proof = presentation.proofs[0] if presentation.proofs else None
    dpop.check(access, presentation.token, proof, method=presentation.method, url=presentation.url)


#: RFC 3986 authority as a Host header may hold it: reg-name or IP literal, optional port.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::[0-9]{1,5})?")


def request_url(scope: Mapping[str, Any]) -> str | None:
    """The URL a request reached, without query: what a DPoP proof's ``htu`` must name.

    None when the ``Host`` header is not an authority (a ``/``, ``?`` or ``#`` in it
    would move the real path out of the URL the proof is compared with).
    """
    given = str(scope.get("scheme", "http"))
    scheme = {"ws": "http", "wss": "https"}.get(given, given)
    host = None
    for name, value in scope.get("headers", []):
        if name.lower() == b"host":
            host = value.decode("latin-1")
            break
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    if not _HOST.fullmatch(host):
        return None
    return f"{scheme}://{host}{request_path(scope)}"


def request_path(scope: Mapping[str, Any]) -> str:
    """The request's path as sent (``raw_path``), without its query."""
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else str(scope.get("path", "/"))
    return path.split("?", 1)[0] or "/"


def scope_from_wsgi(environ: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an ASGI scope :class:`Presentation` reads, from a WSGI ``environ``
    (Flask, Django under WSGI): method, scheme, path as sent, headers.

    WSGI gives no TLS client certificate: a certificate-bound token is refused there.
    """
    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            name = key[5:].replace("_", "-").lower()
            headers.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
    # PEP 3333: PATH_INFO and SCRIPT_NAME are bytes decoded as latin-1, as raw_path is.
    path = f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}" or "/"
    port = str(environ.get("SERVER_PORT") or "")
    return {
        "type": "http",
        "method": str(environ.get("REQUEST_METHOD", "GET")),
        "scheme": str(environ.get("wsgi.url_scheme", "http")),
        "raw_path": path.encode("latin-1", "replace"),
        "path": path,
        "headers": headers,
        "server": (
            str(environ.get("SERVER_NAME", "localhost")),
            int(port) if port.isdigit() else None,
        ),
    }
