"""The server's Prometheus metrics, served at the admin listener's ``/metrics``.

- ``authkestra_token_requests_total{client_id, outcome}``: token requests, ``outcome``
  ``issued`` or the OAuth error code; ``client_id`` only once the client authenticated
  (``""`` before: ids sent by strangers must not grow the label set).
- ``authkestra_authentication_failures_total{reason}``: refused client authentications,
  by a reason from a fixed list (:data:`REFUSAL_REASONS`).
- ``authkestra_throttled_requests_total``: answers 429 to an address over its failure limit.
- ``authkestra_request_duration_seconds{endpoint, status_class}``: latency histogram per
  endpoint (``admin`` for the admin API, ``other`` for paths the server does not serve).
- ``authkestra_backend_errors_total{backend}``: the store or Redis unreachable mid-request.
- ``authkestra_signing_key_age_seconds``: age of the key that signs now (read at scrape).

Under ``serve --workers N`` every worker is its own process: ``serve`` points
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) at a private
directory before the workers start, and a scrape adds up what every worker wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

if TYPE_CHECKING:
    from .keys import KeyRing

__all__ = [
    "CONTENT_TYPE",
    "FEDERATED_PREFIX",
    "REFUSAL_REASONS",
    "count_backend_error",
    "count_refusal",
    "count_throttled",
    "count_token_request",
    "observe_request",
    "render",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: The environment variable of prometheus_client's multiprocess mode.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

#: Every reason a refused client authentication is counted under.
REFUSAL_REASONS = (
    "unknown_client",
    "client_disabled",
    "wrong_method",
    "wrong_secret",
    "no_secret",
    "bad_assertion",
    "assertion_replayed",
    "assertions_not_accepted",
    "no_client_certificate",
    "wrong_certificate",
    "federated_assertion",
    "malformed_credentials",
)
#: How the refusals of a trusted issuer's assertion begin (the rest says why, for the log).
FEDERATED_PREFIX = "federated assertion: "
_BY_MESSAGE = {
    "unknown client": "unknown_client",
    "client disabled": "client_disabled",
    "wrong secret": "wrong_secret",
    "no secret": "no_secret",
    "bad assertion signature": "bad_assertion",
    "invalid client assertion": "bad_assertion",
    "client assertion replayed": "assertion_replayed",
    "client assertions not accepted": "assertions_not_accepted",
    "no client certificate": "no_client_certificate",
    "certificate not the client's": "wrong_certificate",
}

#: The paths latency is kept for by name; any other is ``other``.
ENDPOINTS = frozenset(
    {
        "/token",
        "/introspect",
        "/revoke",
        "/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/healthz",
        "/readyz",
        "/register",
        "/revocations",
    }
)

TOKEN_REQUESTS = Counter(
    "authkestra_token_requests",
    "Token requests, by client (once authenticated) and outcome (issued or the error code).",
    ["client_id", "outcome"],
)
AUTHENTICATION_FAILURES = Counter(
    "authkestra_authentication_failures",
    "Refused client authentications, by reason.",
    ["reason"],
)
THROTTLED = Counter(
    "authkestra_throttled_requests",
    "Requests refused (429) because their address failed to authenticate too often.",
)
REQUEST_SECONDS = Histogram(
    "authkestra_request_duration_seconds",
    "Time from request to response, by endpoint.",
    ["endpoint", "status_class"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BACKEND_ERRORS = Counter(
    "authkestra_backend_errors",
    "Requests that found the store or Redis unreachable, by backend.",
    ["backend"],
)


def refusal_reason(message: str) -> str:
    """The counted reason (one of :data:`REFUSAL_REASONS`) of a refusal's message."""
    reason = _BY_MESSAGE.get(message)
    if reason is not None:
        return reason
    if " used by a " in message:
        return "wrong_method"
    if message.startswith(FEDERATED_PREFIX):
        return "federated_assertion"
    return "malformed_credentials"


#: Labelled children looked up once (``labels()`` costs microseconds on the token path);
#: bounded like the label sets themselves (registered clients x outcomes).
_TOKEN_CHILDREN: dict[tuple[str, str], Any] = {}
_LATENCY_CHILDREN: dict[tuple[str, str], Any] = {}


def count_token_request(client_id: str | None, outcome: str) -> None:
    key = (client_id or "", outcome)
    child = _TOKEN_CHILDREN.get(key)
    if child is None:
        if len(_TOKEN_CHILDREN) > 10_000:
            _TOKEN_CHILDREN.clear()
        child = _TOKEN_CHILDREN[key] = TOKEN_REQUESTS.labels(*key)
    child.inc()


def count_refusal(message: str) -> None:
    AUTHENTICATION_FAILURES.labels(refusal_reason(message)).inc()


def count_throttled() -> None:
    THROTTLED.inc()


def count_backend_error(backend: str) -> None:
    BACKEND_ERRORS.labels(backend).inc()


def observe_request(path: str, status: int, seconds: float) -> None:
    if path in ENDPOINTS:
        endpoint = path
    elif path.startswith("/admin/") or path == "/metrics":
        endpoint = "admin"
    else:
        endpoint = "other"
    key = (endpoint, f"{status // 100}xx")
    child = _LATENCY_CHILDREN.get(key)
    if child is None:
        child = _LATENCY_CHILDREN[key] = REQUEST_SECONDS.labels(*key)
    child.observe(seconds)


class SigningKeyAge(Collector):
    """``authkestra_signing_key_age_seconds``, read from the key ring when scraped."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def collect(self) -> Iterable[Metric]:
        created = self.keys.signing_key_created_at()
        age = (datetime.now(timezone.utc) - created).total_seconds() if created else 0.0
        yield GaugeMetricFamily(
            "authkestra_signing_key_age_seconds",
            "Seconds since the key that signs now was made (rotate before it grows old).",
            value=max(age, 0.0),
        )


def render(keys: KeyRing) -> bytes:
    """The Prometheus text of every metric: this process's, or, under several workers,
    the sum over every worker's files; with the signing key's age."""
    registry = CollectorRegistry()
    registry.register(SigningKeyAge(keys))
    directory = os.environ.get(MULTIPROCESS_DIR)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return _generate(registry)
    return _generate(REGISTRY) + _generate(registry)
