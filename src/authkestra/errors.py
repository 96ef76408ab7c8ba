"""Every error authkestra raises, as one tree.

::

    AuthError                      base of everything authkestra raises
    ├── ConfigError                the flow is misconfigured (names the setting or variable)
    │   └── ClientAssertionError   a platform's client assertion is missing, unreadable or expired
    ├── InvalidToken               resource servers: a presented token is not valid (RFC 6750, 401)
    ├── InsufficientScope          resource servers: valid, but lacks a scope (RFC 6750, 403)
    ├── NetworkError               connect, read, timeout or TLS failure (cause chained)
    └── ProviderError              the endpoint answered, with a failure (.status_code)
        ├── OAuthError             RFC 6749 §5.2 error (.error, .error_description, .error_uri)
        │   ├── InvalidRequest         invalid_request
        │   ├── InvalidClient          invalid_client
        │   ├── InvalidGrant           invalid_grant
        │   ├── UnauthorizedClient     unauthorized_client
        │   ├── UnsupportedGrantType   unsupported_grant_type
        │   ├── InvalidScope           invalid_scope
        │   └── InvalidTarget          invalid_target (RFC 8707)
        ├── RateLimited            HTTP 429 (.retry_after, seconds or None)
        └── MalformedResponse      a body that is not a valid token or metadata response

Each :class:`OAuthError` subclass carries its wire code in the class attribute
``error``, so turning a JSON error body into an exception is a table lookup
(:data:`OAUTH_ERRORS`), not a chain of ifs. Codes outside the table (for example
``server_error``) become a plain :class:`OAuthError` that keeps the code.

No message or repr built here ever contains a client secret or an access token:
text that comes from the server is cleaned by the caller before it reaches an
exception (see :mod:`authkestra._protocol.redact`).
"""

from __future__ import annotations

__all__ = [
    "OAUTH_ERRORS",
    "AuthError",
    "ClientAssertionError",
    "ConfigError",
    "InsufficientScope",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "InvalidToken",
    "MalformedResponse",
    "NetworkError",
    "OAuthError",
    "ProviderError",
    "RateLimited",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "oauth_error_from_wire",
]


class AuthError(Exception):
    """Base class of every error authkestra raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take keyword-only arguments: rebuild from the attributes, so
        # errors can be copied (one per waiting caller) and pickled (to a worker).
        return (_rebuild, (type(self), self.args, self.__dict__.copy()))


def _rebuild(cls: type[AuthError], args: tuple[object, ...], state: dict[str, object]) -> AuthError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ConfigError(AuthError):
    """The flow, the CLI or the environment is misconfigured.

    The message names the argument or environment variable to fix.
    """


class ClientAssertionError(ConfigError):
    """The client assertion the platform provides cannot be used.

    Its file is missing, unreadable or empty, its callable failed, it is not a
    JWT, or it has expired (or is about to) and reading it again gave no fresher
    one -- the platform (kubelet, CI runner, workload identity agent) has not
    renewed it. The message names the source, never the assertion.
    """


class InvalidToken(AuthError):
    """A bearer token presented to a resource server is not valid (RFC 6750 §3.1).

    The message says why (expired, wrong audience, bad signature, ...). It is
    meant for logs; answer the client with the generic ``invalid_token``.
    """

    error = "invalid_token"
    status_code = 401


class InsufficientScope(AuthError):
    """The token is valid but lacks a scope the resource needs (RFC 6750 §3.1).

    ``required_scopes`` lists what was needed.
    """

    error = "insufficient_scope"
    status_code = 403

    def __init__(self, message: str, *, required_scopes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.required_scopes = required_scopes


class NetworkError(AuthError):
    """The request did not get an answer: connect, read, timeout or TLS failure.

    The underlying exception is chained as ``__cause__``. ``retryable`` is False
    for failures a retry cannot mend, such as an untrusted TLS certificate.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ProviderError(AuthError):
    """The endpoint answered, but with a failure.

    ``status_code`` is the HTTP status of the answer (200 for an error body sent
    with a success status).
    """

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class OAuthError(ProviderError):
    """An OAuth error response (RFC 6749 §5.2).

    ``error`` is the wire code (``invalid_client``, ...); ``error_description``
    and ``error_uri`` are the server's optional explanation, already cleaned of
    control characters and secrets.
    """

    error: str = "oauth_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error: str | None = None,
        error_description: str | None = None,
        error_uri: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        if error is not None:
            # An instance may carry a code the table does not know (server_error, ...).
            self.error = error
        self.error_description = error_description
        self.error_uri = error_uri


class InvalidRequest(OAuthError):
    """The request is missing a parameter, repeats one, or is otherwise malformed."""

    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed: unknown client, wrong secret or wrong method."""

    error = "invalid_client"


class InvalidGrant(OAuthError):
    """The grant is invalid, expired or revoked."""

    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    """The client may not use this grant type."""

    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    """The server does not support this grant type."""

    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """A requested scope is unknown, malformed, or not allowed for this client."""

    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """A requested resource or audience is not allowed (RFC 8707)."""

    error = "invalid_target"


class RateLimited(ProviderError):
    """The endpoint answered 429 Too Many Requests.

    ``retry_after`` is the server's ``Retry-After`` in seconds, or None.
    """

    def __init__(
        self, message: str, *, status_code: int = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class MalformedResponse(ProviderError):
    """The body is not a valid answer: not JSON, not an object, or a field is wrong."""


#: Wire code -> exception class, for every code with a class of its own.
OAUTH_ERRORS: dict[str, type[OAuthError]] = {
    cls.error: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        InvalidTarget,
    )
}


def oauth_error_from_wire(
    error: str,
    *,
    status_code: int,
    error_description: str | None = None,
    error_uri: str | None = None,
) -> OAuthError:
    """Build the exception for an OAuth error code received from a server."""
    cls = OAUTH_ERRORS.get(error, OAuthError)
    message = f"{error}: {error_description}" if error_description else error
    return cls(
        f"the authorization server refused the request ({message})",
        status_code=status_code,
        error=error,
        error_description=error_description,
        error_uri=error_uri,
    )
