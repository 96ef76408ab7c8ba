"""TLS for ``authkestra serve``: uvicorn's SSL context, asking clients for certificates.

The context trusts the client CA file and every registered self-signed client
certificate. Clients register at any time (from another process), so the set
of self-signed certificates is refreshed by the app (:func:`refresh_forever`)
and each new TLS handshake picks up the current set: the SNI callback, which
OpenSSL calls on every handshake, swaps in a context built for that set.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread

from .mtls import self_signed_pems
from .store import Store

__all__ = [
    "SELF_SIGNED_TRUST",
    "SelfSignedTrust",
    "ServerSSLContext",
    "load_trust",
    "refresh_forever",
]

logger = logging.getLogger("authkestra.server")


class SelfSignedTrust:
    """The registered self-signed client certificates this process accepts (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pems: tuple[str, ...] = ()
        self.version = 0

    def update(self, pems: list[str]) -> None:
        fresh = tuple(sorted(set(pems)))
        with self._lock:
            if fresh != self.pems:
                self.pems = fresh
                self.version += 1


#: The process's set: filled by the app, read by the TLS handshakes of the same process.
SELF_SIGNED_TRUST = SelfSignedTrust()


class ServerSSLContext:
    """uvicorn's ``ssl_context_factory`` (picklable, for worker processes).

    ``client_ca``: PEM bundle of the CAs of ``tls_client_auth`` certificates.
    Client certificates are optional: a client without one connects and
    authenticates another way (and gets unbound tokens).
    """

    def __init__(self, certfile: str, keyfile: str | None, client_ca: str | None) -> None:
        self.certfile = certfile
        self.keyfile = keyfile
        self.client_ca = client_ca

    def build(self, self_signed: tuple[str, ...]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certfile, self.keyfile)
        trusted = False
        if self.client_ca:
            context.load_verify_locations(cafile=self.client_ca)
            trusted = True
        if self_signed:
            context.load_verify_locations(cadata="\n".join(self_signed))
            trusted = True
        # Without any trust anchor a presented certificate could only fail the handshake.
        context.verify_mode = ssl.CERT_OPTIONAL if trusted else ssl.CERT_NONE
        return context

    def __call__(self, _config: Any, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        trust = SELF_SIGNED_TRUST
        built: dict[int, ssl.SSLContext] = {}
        lock = threading.Lock()

        def current() -> ssl.SSLContext:
            version, pems = trust.version, trust.pems
            context = built.get(version)
            if context is None:
                with lock:
                    context = built.get(version) or self.build(pems)
                    built.clear()
                    built[version] = context
                    context.sni_callback = swap
            return context

        def swap(ssl_object: Any, _server_name: str | None, used: ssl.SSLContext) -> None:
            wanted = current()
            if wanted is not used:
                ssl_object.context = wanted

        return current()


def load_trust(store: Store) -> None:
    """Read the registered self-signed certificates into :data:`SELF_SIGNED_TRUST` (blocking)."""
    SELF_SIGNED_TRUST.update(self_signed_pems(store.self_signed_certificates()))


async def refresh_forever(store: Store, interval: float) -> None:
    """Keep :data:`SELF_SIGNED_TRUST` in step with the store (run as a task of the app)."""
    while True:
        await anyio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(load_trust, store)
        except Exception:  # the store is down: keep the set we have, try again
            logger.warning("could not refresh the self-signed client certificates", exc_info=True)
