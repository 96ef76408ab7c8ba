"""The SSL context of a flow's own httpx clients: a client certificate, a private CA."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

import httpx

from .._protocol.client_auth import AuthMethod
from ..errors import ConfigError

__all__ = ["ClientCertLike", "client_ssl_context", "flow_ssl_context"]

#: A PEM file holding certificate and key; or (certificate, key); or (certificate, key,
#: password of the key).
ClientCertLike = str | Path | Sequence[str | Path]


def client_ssl_context(
    client_cert: ClientCertLike | None, ca_bundle: str | Path | None
) -> ssl.SSLContext | None:
    """An SSL context that presents ``client_cert`` and trusts ``ca_bundle``; None if neither.

    Loaded once, when the flow is made, so a wrong path or a key that does not
    match its certificate is a ConfigError then, not a network error later.
    Without ``ca_bundle`` the usual trust store (certifi, as httpx uses) is kept.
    """
    if client_cert is None and ca_bundle is None:
        return None
    context = httpx.create_ssl_context()
    if ca_bundle is not None:
        try:
            context.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"ca_bundle {str(ca_bundle)!r} is not a readable PEM bundle ({_why(exc)})"
            ) from None
    if client_cert is not None:
        certfile, keyfile, password = _parts(client_cert)
        try:
            context.load_cert_chain(certfile, keyfile, password or _no_password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"client_cert {certfile!r}: the certificate and its key could not be loaded"
                f" ({_why(exc)})"
            ) from None
    return context


def flow_ssl_context(
    method: AuthMethod,
    client_cert: ClientCertLike | None,
    ca_bundle: str | Path | None,
    *,
    injected: bool,
) -> ssl.SSLContext | None:
    """A flow's SSL context, after checking the options go together.

    ``injected``: the flow was given its own httpx client(s), which bring their TLS setup.
    """
    if method.uses_tls and client_cert is None and not injected:
        raise ConfigError(
            f"auth_method={method.value!r} needs client_cert= (or your own http_client"
            " presenting a client certificate)"
        )
    if injected and (client_cert is not None or ca_bundle is not None):
        raise ConfigError(
            "client_cert and ca_bundle are for the flow's own connections: with"
            " http_client=, set them up on that client"
        )
    return client_ssl_context(client_cert, ca_bundle)


def _parts(client_cert: ClientCertLike) -> tuple[str, str | None, str | None]:
    if isinstance(client_cert, (str, Path)):
        return str(client_cert), None, None
    parts = list(client_cert)
    if not 1 <= len(parts) <= 3 or not all(isinstance(p, (str, Path)) for p in parts):
        raise ConfigError("client_cert is a path, or (certificate, key[, key password])")
    certfile = str(parts[0])
    keyfile = str(parts[1]) if len(parts) > 1 else None
    password = str(parts[2]) if len(parts) > 2 else None
    return certfile, keyfile, password


def _no_password() -> str:
    # Without this, OpenSSL would prompt for the password on the terminal (or hang).
    raise ConfigError("client_cert: the key is encrypted: give (cert, key, key_password)")


def _why(exc: Exception) -> str:
    # The reason only: an OSError's text names the file, never its content; no password.
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "not a certificate and key in PEM"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
