"""Obtain an access token as this service, then call an API with it.

The complete program, meant to be copied. Configuration comes from the
environment, so the same file runs on a laptop, in cron and in a container::

    export AUTHKESTRA_CLIENT_ID=billing-worker
    export AUTHKESTRA_CLIENT_SECRET_FILE=/run/secrets/billing-worker   # or AUTHKESTRA_CLIENT_SECRET
    export AUTHKESTRA_TOKEN_URL=https://auth.example.com/oauth2/token  # or AUTHKESTRA_ISSUER
    export AUTHKESTRA_SCOPES="read write"                              # optional
    export API_URL=https://api.example.com/v1/status
    python examples/client_credentials.py

Progress and errors go to stderr, the API's answer to stdout. The client
secret and the access token are never printed.

Exit status: the codes of ``authkestra token`` for the token request, so a
scheduler can tell "fix the setup" from "try again later", and two more for
the API call:

    0   success
    1   an unexpected error (a Python traceback)
    3   configuration: a variable is missing or wrong
    4   network: the authorization server did not answer
    5   invalid client: wrong client id, secret or auth method
    6   scope, audience or resource refused
    7   another OAuth error (grant not allowed, server_error, ...)
    8   rate limited
    9   the answer is not a valid OAuth response (wrong URL?)
    10  another failure answer from the authorization server (5xx, 404, ...)
    11  an authkestra error of a class added in a later version
    20  the API refused the token (401, 403)
    21  the API failed or could not be reached
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx

from authkestra import (
    AuthError,
    ClientCredentialsFlow,
    ConfigError,
    InvalidClient,
    InvalidScope,
    InvalidTarget,
    MalformedResponse,
    NetworkError,
    OAuthError,
    ProviderError,
    RateLimited,
    UnauthorizedClient,
    UnsupportedGrantType,
)

API_URL = os.environ.get("API_URL") or "https://api.example.com/v1/status"

EXIT_OK = 0
EXIT_CONFIG = 3
EXIT_NETWORK = 4
EXIT_INVALID_CLIENT = 5
EXIT_INVALID_SCOPE = 6
EXIT_OAUTH_ERROR = 7
EXIT_RATE_LIMITED = 8
EXIT_MALFORMED_RESPONSE = 9
EXIT_PROVIDER_ERROR = 10
EXIT_AUTH_ERROR = 11
EXIT_API_REFUSED = 20
EXIT_API_FAILED = 21

WHERE = "AUTHKESTRA_TOKEN_URL (or AUTHKESTRA_ISSUER)"


def say(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def fail(code: int, *lines: str) -> int:
    say(*lines)
    return code


def server_detail(exc: OAuthError) -> str:
    """What the server said, if anything (authkestra has already cleaned it of secrets)."""
    detail = f"  server said: {exc.error}"
    if exc.error_description:
        detail += f" ({exc.error_description})"
    if exc.error_uri:
        detail += f", see {exc.error_uri}"
    return detail


async def run(api_url: str) -> int:
    # Reads AUTHKESTRA_* now; a missing or invalid variable is a ConfigError naming it.
    flow = ClientCredentialsFlow.from_env()

    # Scopes, audience and resource come from AUTHKESTRA_SCOPES, _AUDIENCE and _RESOURCE.
    # Network errors, 5xx and 429 answers have already been retried with back-off
    # when get_token() raises.
    token = await flow.get_token()
    granted = " ".join(token.scopes) or "(none listed)"
    lifetime = f"{token.expires_in} s" if token.expires_in is not None else "unknown"
    say(
        f"obtained a {token.token_type} token for {flow.client_id}"
        f" ({len(token.access_token)} characters, scopes: {granted}, lifetime: {lifetime})"
    )

    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)) as http:
        try:
            response = await http.get(
                api_url, headers={"Authorization": f"Bearer {token.access_token}"}
            )
        except httpx.HTTPError as exc:
            return fail(
                EXIT_API_FAILED,
                f"error: could not reach the API at {api_url} ({type(exc).__name__}).",
                "  Check API_URL, DNS, proxy settings (HTTPS_PROXY, NO_PROXY) and TLS.",
            )

    if response.status_code in (401, 403):
        return fail(
            EXIT_API_REFUSED,
            f"error: the API refused the token (HTTP {response.status_code}).",
            "  The token was issued, but the API does not accept it for this call: check that"
            " the API trusts this authorization server and that AUTHKESTRA_SCOPES,"
            " AUTHKESTRA_AUDIENCE or AUTHKESTRA_RESOURCE ask for what the API requires.",
        )
    if response.status_code >= 500:
        return fail(
            EXIT_API_FAILED,
            f"error: the API at {api_url} failed (HTTP {response.status_code}); try again later.",
        )
    if response.status_code >= 400:
        return fail(
            EXIT_API_FAILED,
            f"error: the API at {api_url} answered HTTP {response.status_code}; check API_URL.",
        )
    say(f"{api_url} answered HTTP {response.status_code}")
    print(response.text)
    return EXIT_OK


def main() -> int:
    try:
        return asyncio.run(run(API_URL))

    # -- our side: fix the configuration ------------------------------------------
    except ConfigError as exc:
        # The message names the variable or setting: AUTHKESTRA_CLIENT_ID is not set,
        # the secret file cannot be read, the URL is not https, ...
        return fail(EXIT_CONFIG, f"configuration error: {exc}")

    # -- the authorization server refused: fix the registration or the request ------
    except InvalidClient as exc:
        return fail(
            EXIT_INVALID_CLIENT,
            "error: the authorization server did not accept the client credentials.",
            "  Check AUTHKESTRA_CLIENT_ID and the secret (AUTHKESTRA_CLIENT_SECRET, or the file"
            " AUTHKESTRA_CLIENT_SECRET_FILE names).",
            "  Check AUTHKESTRA_AUTH_METHOD: the client may be registered for"
            " client_secret_post rather than client_secret_basic (the default).",
            server_detail(exc),
        )
    except InvalidScope as exc:
        return fail(
            EXIT_INVALID_SCOPE,
            "error: a requested scope is unknown or not allowed for this client.",
            "  Check AUTHKESTRA_SCOPES against the scopes the client is registered for.",
            server_detail(exc),
        )
    except InvalidTarget as exc:
        return fail(
            EXIT_INVALID_SCOPE,
            "error: the requested audience or resource is unknown or not allowed for this client.",
            "  Check AUTHKESTRA_AUDIENCE and AUTHKESTRA_RESOURCE.",
            server_detail(exc),
        )
    except (UnauthorizedClient, UnsupportedGrantType) as exc:
        return fail(
            EXIT_OAUTH_ERROR,
            "error: this client may not use the client_credentials grant here.",
            "  Enable the Client Credentials grant for the client at the authorization server,"
            f" and check that {WHERE} points at the right server.",
            server_detail(exc),
        )
    except OAuthError as exc:
        if exc.status_code >= 500 or exc.error in ("server_error", "temporarily_unavailable"):
            return fail(
                EXIT_OAUTH_ERROR,
                f"error: the authorization server failed (HTTP {exc.status_code});"
                " it was retried already, try again later.",
                server_detail(exc),
            )
        return fail(
            EXIT_OAUTH_ERROR,
            f"error: the authorization server refused the request (HTTP {exc.status_code}).",
            server_detail(exc),
        )

    # -- the authorization server did not answer as one should ----------------------
    except RateLimited as exc:
        wait = f"after {exc.retry_after:.0f} s" if exc.retry_after is not None else "later"
        return fail(
            EXIT_RATE_LIMITED,
            f"error: the authorization server is rate limiting this client; try again {wait}.",
        )
    except MalformedResponse as exc:
        return fail(
            EXIT_MALFORMED_RESPONSE,
            f"error: {exc}",
            f"  Is {WHERE} right? A login page, a proxy's error page or an API URL"
            " answers like this instead of an OAuth token endpoint.",
        )
    except ProviderError as exc:
        status = exc.status_code
        if status >= 500:
            hint = "the server, or a gateway in front of it, is failing; try again later."
        elif status in (404, 405, 410):
            hint = f"nothing answers OAuth requests there: check {WHERE}."
        elif 300 <= status <= 399:
            hint = f"redirects are not followed: put the final URL in {WHERE}."
        else:
            hint = f"check {WHERE}, and any proxy or gateway in front of the server."
        return fail(EXIT_PROVIDER_ERROR, f"error: {exc}", f"  HTTP {status}: {hint}")

    # -- no answer at all -----------------------------------------------------------
    except NetworkError as exc:
        if not exc.retryable:
            # An untrusted TLS certificate: retrying will not help.
            return fail(
                EXIT_NETWORK,
                f"error: {exc}",
                "  If the server uses a private CA, point SSL_CERT_FILE at its bundle.",
            )
        return fail(
            EXIT_NETWORK,
            f"error: {exc}",
            f"  Check the host name and port in {WHERE}, DNS, firewalls, and proxy"
            " settings (HTTPS_PROXY, NO_PROXY).",
        )

    except AuthError as exc:  # a class added in a later version
        return fail(EXIT_AUTH_ERROR, f"error: {exc}")


if __name__ == "__main__":
    sys.exit(main())
