"""Authenticating clients at the token, introspection and revocation endpoints."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .._protocol.client_auth import AuthMethod
from ..errors import InvalidClient
from .oauth_request import ClientCredentials
from .secret_hashing import SecretHasher
from .store import ClientRecord, Store

if TYPE_CHECKING:
    from ..tls import ClientCertificate
    from .client_assertions import AssertionVerifier
    from .mtls import MutualTLS

__all__ = ["ClientDirectory"]

_FAILED = InvalidClient(
    "client authentication failed",
    status_code=401,
    error_description="client authentication failed",
)


class ClientDirectory:
    """Looks clients up (briefly cached) and checks their credentials.

    Every failure is the same ``invalid_client`` -- unknown client, wrong
    secret, wrong method, disabled -- so the answer tells an attacker nothing,
    and an unknown client costs the same hash and comparison as a known one.
    Client assertions (``private_key_jwt``, ``client_secret_jwt``) go to the
    ``assertions`` verifier, certificates (``tls_client_auth``,
    ``self_signed_tls_client_auth``) to ``mtls``; without one they are refused.
    """

    def __init__(
        self,
        store: Store,
        hasher: SecretHasher,
        *,
        cache_seconds: float,
        assertions: AssertionVerifier | None = None,
        mtls: MutualTLS | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.assertions = assertions
        self.mtls = mtls
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ClientRecord | None]] = {}
        self._lock = threading.Lock()

    def is_cached(self, client_id: str) -> bool:
        """True when :meth:`lookup` would answer from memory, without the store."""
        hit = self._cache.get(client_id)
        return hit is not None and time.monotonic() - hit[0] < self.cache_seconds

    def lookup(self, client_id: str) -> ClientRecord | None:
        now = time.monotonic()
        hit = self._cache.get(client_id)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        record = self.store.find_client(client_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()  # bounded: random ids cannot grow it without limit
            self._cache[client_id] = (now, record)
        return record

    def authenticate(
        self, credentials: ClientCredentials, certificate: ClientCertificate | None = None
    ) -> ClientRecord:
        """The client, if the credentials are right for it; else ``invalid_client``.

        ``certificate``: the client certificate of the request's TLS connection, if any.
        """
        if credentials.assertion is not None:
            return self._authenticate_assertion(credentials)
        client = self.lookup(credentials.client_id)
        if client is not None and client.method.uses_tls:
            return self._authenticate_certificate(client, credentials, certificate)
        now = datetime.now(timezone.utc)
        hashes = (
            [h.value for h in client.secrets if h.expires_at is None or h.expires_at > now]
            if client is not None
            else []
        )
        secret_ok = self.hasher.matches(credentials.secret or "", hashes)
        if (
            client is None
            or not client.enabled
            or credentials.secret is None  # only confidential clients get tokens here
            or credentials.method is not client.method
            or not secret_ok
        ):
            raise _copy(_FAILED)
        return client

    def _authenticate_certificate(
        self,
        client: ClientRecord,
        credentials: ClientCredentials,
        certificate: ClientCertificate | None,
    ) -> ClientRecord:
        # RFC 8705 §2: the client_id in the body, no other credential; the TLS
        # connection's certificate is the proof. The hash an unknown client costs is
        # paid here too, so timing does not tell certificate clients apart.
        self.hasher.matches(credentials.secret or "", [])
        if (
            not client.enabled
            or credentials.method is not AuthMethod.NONE
            or certificate is None
            or self.mtls is None
            or not self.mtls.authenticates(client, certificate)
        ):
            raise _copy(_FAILED)
        return client

    def _authenticate_assertion(self, credentials: ClientCredentials) -> ClientRecord:
        assertion = credentials.assertion
        assert assertion is not None
        verifier = self.assertions
        if verifier is None:
            raise _copy(_FAILED)
        exp = verifier.check_claims(assertion)  # what it says, before any look-up
        client = self.lookup(credentials.client_id)
        if (
            client is None
            or not client.enabled
            or not client.method.uses_assertion
            # The header's alg names the method; it must be the client's (HS256 for a
            # private_key_jwt client is refused here, before any key is touched).
            or credentials.method is not client.method
            or not verifier.verify_signature(client, assertion)
        ):
            raise _copy(_FAILED)
        if not verifier.first_use(client.client_id, assertion, exp):
            raise InvalidClient(
                "client assertion replayed",
                status_code=401,
                error_description="the client assertion was already used (its jti is spent)",
            )
        return client


def _copy(error: InvalidClient) -> InvalidClient:
    return InvalidClient(
        error.message, status_code=error.status_code, error_description=error.error_description
    )
