"""How verifiers talk to the issuer: retries, limits and drivers, set up one way for all."""

from __future__ import annotations

import httpx

from .._clock import Clock
from .._io.drivers import Drivers
from .._protocol.context import ProtocolContext
from .._protocol.redact import Redactor
from .._protocol.retry import RetryPolicy
from .._version import __version__
from ..secrets import SecretSource
from . import _options as options

__all__ = ["issuer_io"]

#: A verifier waits for the issuer less than a client does: a request is waiting on it.
VERIFIER_RETRY = RetryPolicy(max_attempts=2, base_backoff=0.2, max_backoff=1.0, total_timeout=10.0)


def issuer_io(
    *,
    clock: Clock,
    timeout: float | httpx.Timeout,
    max_body: int,
    allow_insecure_http: bool,
    http_client: httpx.Client | None,
    async_http_client: httpx.AsyncClient | None,
    secret_source: SecretSource | None = None,
) -> tuple[ProtocolContext, Drivers]:
    """The protocol context and the drivers a verifier sends its requests through."""
    ctx = ProtocolContext(
        policy=VERIFIER_RETRY,
        clock=clock.monotonic,
        wall_clock=clock.now,
        max_body=max_body,
        user_agent=f"authkestra/{__version__}",
        redact=Redactor(),
        allow_insecure_http=allow_insecure_http,
    )
    drivers = Drivers(
        timeout=options.timeout(timeout),
        clock=clock.monotonic,
        http_client=http_client,
        async_http_client=async_http_client,
        secret_source=secret_source,
    )
    return ctx, drivers
