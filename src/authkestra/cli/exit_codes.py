"""The exit status of every ``authkestra`` command, one per class of failure.

Scripts branch on these, so they are part of the command line interface and
never change meaning::

    0    OK                   success
    1    INTERNAL_ERROR       an unexpected exception: a bug (what a crash would give)
    2    USAGE                bad command line (the parser's own code)
    3    CONFIG               ConfigError: a setting or environment variable is wrong
    4    NETWORK              NetworkError: no answer (connect, read, timeout, TLS)
    5    INVALID_CLIENT       InvalidClient: wrong client id, secret or auth method
    6    INVALID_SCOPE        InvalidScope, InvalidTarget: scope, audience or resource refused
    7    OAUTH_ERROR          any other OAuthError (invalid_request, server_error, ...)
    8    RATE_LIMITED         RateLimited: HTTP 429
    9    MALFORMED_RESPONSE   MalformedResponse: the answer is not a valid response
    10   PROVIDER_ERROR       any other ProviderError (HTTP 5xx, an HTML error page, ...)
    11   AUTH_ERROR           an AuthError of a class this table does not know yet
    130  INTERRUPTED          Ctrl-C (128 + SIGINT, as shells report it)
"""

from __future__ import annotations

import enum

from ..errors import (
    AuthError,
    ConfigError,
    InvalidClient,
    InvalidScope,
    InvalidTarget,
    MalformedResponse,
    NetworkError,
    OAuthError,
    ProviderError,
    RateLimited,
)

__all__ = ["EXIT_CODES", "ExitCode", "exit_code_for"]


class ExitCode(enum.IntEnum):
    """The process exit status of an ``authkestra`` command."""

    OK = 0
    INTERNAL_ERROR = 1
    USAGE = 2
    CONFIG = 3
    NETWORK = 4
    INVALID_CLIENT = 5
    INVALID_SCOPE = 6
    OAUTH_ERROR = 7
    RATE_LIMITED = 8
    MALFORMED_RESPONSE = 9
    PROVIDER_ERROR = 10
    AUTH_ERROR = 11
    INTERRUPTED = 130


#: Exception class -> exit code. An exception takes the code of the first class
#: of its MRO found here, so a subclass added to the error tree later falls back
#: to its parent's code until it is given one of its own.
EXIT_CODES: dict[type[BaseException], ExitCode] = {
    ConfigError: ExitCode.CONFIG,
    NetworkError: ExitCode.NETWORK,
    InvalidClient: ExitCode.INVALID_CLIENT,
    InvalidScope: ExitCode.INVALID_SCOPE,
    InvalidTarget: ExitCode.INVALID_SCOPE,
    OAuthError: ExitCode.OAUTH_ERROR,
    RateLimited: ExitCode.RATE_LIMITED,
    MalformedResponse: ExitCode.MALFORMED_RESPONSE,
    ProviderError: ExitCode.PROVIDER_ERROR,
    AuthError: ExitCode.AUTH_ERROR,
    KeyboardInterrupt: ExitCode.INTERRUPTED,
    Exception: ExitCode.INTERNAL_ERROR,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for ``exc``: that of the nearest class in its MRO with an entry.

    Anything outside the table (``SystemExit``, ``GeneratorExit``, ...) is an
    internal error: a command should never let one reach this far.
    """
    for cls in type(exc).__mro__:
        code = EXIT_CODES.get(cls)
        if code is not None:
            return code
    return ExitCode.INTERNAL_ERROR
