"""Serving an ASGI app with uvicorn over TLS, with the client's certificate in each scope.

uvicorn verifies client certificates (``ssl_cert_reqs``, ``ssl_ca_certs``) but
does not tell the app which one a connection presented. The HTTP protocol
classes here add the ASGI TLS extension (``scope["extensions"]["tls"]``, with
``client_cert_chain`` holding the leaf certificate as PEM) to every HTTP
request of a TLS connection; :func:`authkestra.tls.presented_certificate`
reads it. Use them through :func:`uvicorn_tls_options`::

    uvicorn.run(app, host="127.0.0.1", port=8443,
                **uvicorn_tls_options("server.pem", "server-key.pem", client_ca="clients-ca.pem"))

WebSocket connections are not given the extension (their scope is built by
uvicorn's WebSocket protocol): a certificate-bound token is refused there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import ConfigError

__all__ = ["TLSExtensionHTTPProtocol", "tls_extension", "uvicorn_tls_options"]

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI TLS extension for one connection (Python gives the leaf certificate only)."""
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,
    }


class _WithTLSExtension:
    """Wraps the protocol's app, per TLS connection, to add the extension to each scope."""

    app: ASGIApp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        extension = tls_extension(ssl_object)
        app = self.app

        async def with_tls(scope: Scope, receive: Any, send: Any) -> None:
            extensions = scope.setdefault("extensions", {})
            if extensions is not None:
                extensions["tls"] = dict(extension)  # a copy: an app may change its own
            await app(scope, receive, send)

        self.app = with_tls


class H11WithTLSExtension(_WithTLSExtension, H11Protocol):
    """uvicorn's h11 protocol, adding the ASGI TLS extension."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is optional in uvicorn
    TLSExtensionHTTPProtocol: type[asyncio.Protocol] = H11WithTLSExtension
else:

    class HttpToolsWithTLSExtension(_WithTLSExtension, HttpToolsProtocol):
        """uvicorn's httptools protocol, adding the ASGI TLS extension."""

    TLSExtensionHTTPProtocol = HttpToolsWithTLSExtension


def uvicorn_tls_options(
    certfile: str | Path,
    keyfile: str | Path | None = None,
    *,
    client_ca: str | Path | None = None,
    require_client_certificate: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config``: TLS, and client certificates.

    With ``client_ca`` (a PEM bundle of the CAs client certificates must chain
    to), clients are asked for a certificate: optional by default, so clients
    without one still connect (and get bearer tokens only), required with
    ``require_client_certificate=True``. A certificate that does not verify
    fails the TLS handshake.
    """
    options: dict[str, Any] = {
        "ssl_certfile": str(certfile),
        "http": TLSExtensionHTTPProtocol,
    }
    if keyfile is not None:
        options["ssl_keyfile"] = str(keyfile)
    if client_ca is not None:
        options["ssl_ca_certs"] = str(client_ca)
        options["ssl_cert_reqs"] = (
            ssl.CERT_REQUIRED if require_client_certificate else ssl.CERT_OPTIONAL
        )
    elif require_client_certificate:
        raise ConfigError("require_client_certificate needs client_ca")
    return options
