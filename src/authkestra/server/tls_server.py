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
    ``db``: the store, read once here for the self-signed certificates already
    registered (the app refreshes them later). Client certificates are always
    asked for and optional: a client without one connects and authenticates
    another way (and gets unbound tokens). A key protected by a password is
    refused at start (there is no one to type it).
    """

    def __init__(
        self, certfile: str, keyfile: str | None, client_ca: str | None, db: str | None = None
    ) -> None:
        self.certfile = certfile
        self.keyfile = keyfile
        self.client_ca = client_ca
        self.db = db

    def build(self, self_signed: tuple[str, ...]) -> ssl.SSLContext:
        """A server context trusting the client CAs and ``self_signed`` (bad entries skipped)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certfile, self.keyfile, password=_no_password)
        if self.client_ca:
            context.load_verify_locations(cafile=self.client_ca)
        for pem in self_signed:
            try:
                context.load_verify_locations(cadata=pem)
            except (ssl.SSLError, ValueError):
                # One bad entry must not take TLS down for every client.
                logger.warning("a registered self-signed client certificate is unusable: skipped")
        # Always CERT_OPTIONAL: switching contexts in the SNI callback changes the trust
        # store but not the verify mode of the connection, which comes from the first one.
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def _initial_trust(self) -> None:
        if self.db is None:
            return
        store = Store(self.db)
        try:
            load_trust(store)
        except Exception:  # a fresh store, not migrated yet: nothing registered
            logger.info("no self-signed client certificates read at start", exc_info=True)
        finally:
            store.close()

    def __call__(self, _config: Any, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        self._initial_trust()
        trust = SELF_SIGNED_TRUST
        built: dict[int, ssl.SSLContext] = {}
        lock = threading.Lock()

        def current() -> ssl.SSLContext:
            version, pems = trust.version, trust.pems
            context = built.get(version)
            if context is None:
                with lock:
                    context = built.get(version)
                    if context is None:
                        context = self.build(pems)
                        context.sni_callback = swap
                        built.clear()
                        built[version] = context
            return context

        def swap(ssl_object: Any, _server_name: str | None, used: ssl.SSLContext) -> None:
            try:
                wanted = current()
            except Exception:  # files gone unreadable: keep serving with the context in use
                logger.warning("could not build a new TLS context: keeping the current one")
                return
            if wanted is not used:
                ssl_object.context = wanted

        return current()


def _no_password() -> str:
    raise ValueError("the TLS key is encrypted: give an unencrypted key file (mode 0600)")


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
