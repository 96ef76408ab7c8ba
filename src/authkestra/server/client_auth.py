"""Authenticating clients at the token, introspection and revocation endpoints."""

from __future__ import annotations

import threading
import time
import weakref
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .._protocol.client_auth import AuthMethod
from ..errors import InvalidClient
from .federation import FederatedRefusal
from .metrics import FEDERATED_PREFIX
from .oauth_request import ClientAssertion, ClientCredentials
from .secret_hashing import SecretHasher
from .store import ClientRecord, Store

if TYPE_CHECKING:
    from ..tls import ClientCertificate
    from .client_assertions import AssertionVerifier
    from .federation import TrustedIssuers
    from .mtls import MutualTLS

__all__ = ["ClientDirectory", "forget_client"]

#: Every directory of this process: a change made here (the admin API beside the token
#: endpoint) is seen at once, not after the cache's seconds (other instances wait those).
_DIRECTORIES: weakref.WeakSet[ClientDirectory] = weakref.WeakSet()


def forget_client(client_id: str) -> None:
    """Drop ``client_id`` from every client cache of this process (it was just changed)."""
    for directory in list(_DIRECTORIES):
        directory.forget(client_id)


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
        federation: TrustedIssuers | None = None,
        mtls: MutualTLS | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.assertions = assertions
        self.federation = federation
        self.mtls = mtls
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ClientRecord | None]] = {}
        self._lock = threading.Lock()
        _DIRECTORIES.add(self)

    def forget(self, client_id: str) -> None:
        """Read ``client_id`` from the store next time."""
        with self._lock:
            self._cache.pop(client_id, None)

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
        reason = _refusal(client, credentials.method) or (
            # only confidential clients get tokens here
            "no secret" if credentials.secret is None else None
        )
        if reason is None and not secret_ok:
            reason = "wrong secret"
        if reason is not None:
            raise _refused(reason)
        assert client is not None  # _refusal said "unknown client" otherwise
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
        if not client.enabled:
            raise _refused("client disabled")
        if credentials.method is not AuthMethod.NONE:
            raise _refused(f"{credentials.method.value} used by a {client.auth_method} client")
        if certificate is None:
            raise _refused("no client certificate")
        if self.mtls is None or not self.mtls.authenticates(client, certificate):
            raise _refused("certificate not the client's")
        return client

    def _authenticate_assertion(self, credentials: ClientCredentials) -> ClientRecord:
        assertion = credentials.assertion
        assert assertion is not None
        verifier = self.assertions
        if verifier is None:
            raise _refused("client assertions not accepted")
        if assertion.federated:
            return self._authenticate_federated(credentials, assertion, verifier)
        exp = verifier.check_claims(assertion)  # what it says, before any look-up
        client = self.lookup(credentials.client_id)
        # The header's alg names the method; it must be the client's (HS256 for a
        # private_key_jwt client is refused here, before any key is touched).
        reason = _refusal(client, credentials.method)
        if reason is not None:
            # Refused before any key of the client: a signature check all the same, so an
            # unknown id is answered as slowly as a known one with a wrong signature.
            verifier.decoy_signature_check(assertion)
        elif client is not None and not verifier.verify_signature(client, assertion):
            reason = "bad assertion signature"
        if reason is not None:
            raise _refused(reason)
        assert client is not None
        if not verifier.first_use(client.client_id, assertion, exp):
            raise InvalidClient(
                "client assertion replayed",
                status_code=401,
                error_description="the client assertion was already used (its jti is spent)",
            )
        return client

    def _authenticate_federated(
        self,
        credentials: ClientCredentials,
        assertion: ClientAssertion,
        verifier: AssertionVerifier,
    ) -> ClientRecord:
        """A trusted issuer's assertion about the client's workload (see :mod:`.federation`)."""
        client = self.lookup(credentials.client_id)
        reason = _refusal(client, credentials.method)
        if reason is None and client is not None and not client.federated:
            reason = f"{FEDERATED_PREFIX}from another issuer for a client bound to none"
        if reason is None and self.federation is None:
            reason = f"{FEDERATED_PREFIX}not set up on this server"
        if reason is not None:
            # As slow as a refused signature: timing does not tell which client ids exist.
            verifier.decoy_signature_check(assertion)
            raise _refused(reason)
        assert client is not None and self.federation is not None
        try:
            self.federation.check(client, assertion)
        except FederatedRefusal as refusal:
            raise _refused(f"{FEDERATED_PREFIX}{refusal}") from None
        return client


def _refusal(client: ClientRecord | None, method: AuthMethod) -> str | None:
    """Why ``client`` may not authenticate with ``method`` at all, or None."""
    if client is None:
        return "unknown client"
    if not client.enabled:
        return "client disabled"
    if method is not client.method:
        return f"{method.value} used by a {client.auth_method} client"
    return None


def _refused(reason: str) -> InvalidClient:
    """The one answer every refusal gets; ``reason`` is its message, for the audit log only."""
    return InvalidClient(
        reason, status_code=_FAILED.status_code, error_description=_FAILED.error_description
    )
