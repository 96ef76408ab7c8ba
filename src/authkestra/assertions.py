"""Client assertions issued by the platform: authenticating without a secret of one's own.

Where a workload runs, the platform vouches for it with a short-lived signed JWT:
a Kubernetes projected service-account token, the file Azure workload identity
names in ``AZURE_FEDERATED_TOKEN_FILE``, a GitHub Actions OIDC token, a SPIFFE
JWT-SVID. The authorization server trusts the platform's issuer, and the client
sends that JWT as its RFC 7523 ``client_assertion``. A flow takes it as
``client_assertion=``:

- a path (``str`` or :class:`os.PathLike`), or an :class:`AssertionFile`: the
  file is read again for every token request, since the platform rewrites it
  before the old assertion expires;
- a callable, sync or async, returning the assertion (``str`` or
  :class:`~authkestra.Secret`): fetched anew for every token request;
- any :class:`~authkestra.SecretSource` whose :attr:`~authkestra.SecretSource.what`
  is ``"client assertion"``.

An assertion that has expired, or expires within
:data:`~authkestra._protocol.client_assertion.EXPIRY_MARGIN` seconds, is read
once more and never sent; if the source still gives no fresher one, the flow
raises :class:`~authkestra.ClientAssertionError`. So does a missing, unreadable
or empty file, a failing callable, and a value that is not a JWT.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

from .errors import ClientAssertionError, ConfigError
from .secrets import CallableSecret, FileSecret, Secret, SecretSource

__all__ = ["AssertionFile", "AssertionLike", "CallableAssertion", "to_assertion_source"]

AssertionCallable = Callable[[], str | Secret | Awaitable[str | Secret]]
AssertionLike = str | os.PathLike[str] | SecretSource | AssertionCallable

#: Three base64url parts: somebody passed the assertion itself, not where it lives.
_COMPACT_JWT = re.compile(r"[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


class AssertionFile(FileSecret):
    """A client assertion read from a file for every token request.

    The file a platform keeps fresh: ``/var/run/secrets/tokens/...`` (a
    Kubernetes projected service-account token), ``$AZURE_FEDERATED_TOKEN_FILE``.
    One trailing line break is removed.
    """

    what = "client assertion"
    error = ClientAssertionError

    def __repr__(self) -> str:
        return f"AssertionFile({str(self.path)!r})"


class CallableAssertion(CallableSecret):
    """A client assertion returned by a function, sync or async, for every token request
    (an identity agent, a CI runner's token API)."""

    what = "client assertion"
    error = ClientAssertionError

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", type(self.func).__name__)
        return f"CallableAssertion({name})"


def to_assertion_source(value: AssertionLike) -> SecretSource:
    """Turn any accepted ``client_assertion`` argument into the source read for each request."""
    if isinstance(value, SecretSource):
        if value.what != AssertionFile.what:
            raise ConfigError(
                f"client_assertion got a source of a {value.what}: use AssertionFile, a path"
                " or a callable"
            )
        return value
    if isinstance(value, str) and _COMPACT_JWT.fullmatch(value.strip()):
        # A fixed assertion would be sent until it expires, then never work again.
        raise ConfigError(
            "client_assertion is the assertion itself: give the path of the file the"
            " platform keeps it in, or a callable returning a fresh one"
        )
    if isinstance(value, (str, os.PathLike)):
        if not str(value).strip():
            raise ConfigError("client_assertion is an empty path")
        return AssertionFile(value)
    if callable(value):
        return CallableAssertion(value)
    raise ConfigError(
        "client_assertion must be a file path, an AssertionFile, or a callable returning the"
        f" assertion (got {type(value).__name__})"
    )
