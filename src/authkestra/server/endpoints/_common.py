"""What every OAuth endpoint shares: bounded bodies, client authentication, JSON errors."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ...errors import InvalidClient, InvalidRequest, OAuthError, RateLimited
from ...tls import ClientCertificate
from ..context import ServerContext
from ..logs import audit, note_client
from ..metrics import count_refusal, count_throttled
from ..oauth_request import ClientCredentials, FormParams, client_credentials, parse_form
from ..store import ClientRecord

__all__ = [
    "MAX_HEADER_BYTES",
    "NO_STORE",
    "RETRY_UNAVAILABLE_AFTER",
    "THROTTLED_ERROR",
    "authenticate_client",
    "bearer_token",
    "error_response",
    "json_response",
    "read_body",
    "read_form",
    "reads_are_local",
    "uses_basic",
]

#: The error code of a 429 (with Retry-After) to an address that failed to authenticate
#: too often: RFC 6749's code for "try again later" (``slow_down`` is the device flow's).
THROTTLED_ERROR = "temporarily_unavailable"

#: Seconds a client is told to wait (Retry-After) when the store or Redis is unreachable.
RETRY_UNAVAILABLE_AFTER = 5

#: RFC 6749 §5.1: responses with tokens must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def uses_basic(request: Request) -> bool:
    return request.headers.get("authorization", "").split(" ", 1)[0].lower() == "basic"


#: The most header bytes an OAuth request may carry: a client assertion goes in the body,
#: a DPoP proof is well under 4 KiB; anything larger is not a client of this server.
MAX_HEADER_BYTES = 16 * 1024


def check_request_line_and_headers(request: Request) -> None:
    """Refuse what an OAuth endpoint must not take from outside the form body.

    No query string: parameters (credentials above all) belong in the body, and a
    URL ends up in logs. One Authorization header at most: two is ambiguous (which
    one authenticates?). Headers in all under :data:`MAX_HEADER_BYTES`.
    """
    if request.scope.get("query_string"):  # (request.url would build the whole URL)
        raise InvalidRequest(
            "query string at an OAuth endpoint",
            status_code=400,
            error_description="no query parameters here: send every parameter in the form body",
        )
    raw = request.headers.raw
    if sum(len(name) + len(value) for name, value in raw) > MAX_HEADER_BYTES:
        raise InvalidRequest(
            "request headers too large",
            status_code=431,
            error_description=f"the request headers exceed {MAX_HEADER_BYTES} bytes",
        )
    if sum(1 for name, _ in raw if name.lower() == b"authorization") > 1:
        raise InvalidRequest(
            "more than one Authorization header",
            status_code=400,
            error_description="send one Authorization header",
        )


async def read_form(request: Request, limit: int) -> FormParams:
    """The form body, at most ``limit`` bytes (read no further), of a request whose line
    and headers pass :func:`check_request_line_and_headers`."""
    check_request_line_and_headers(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidRequest(
                "invalid Content-Length",
                status_code=400,
                error_description="the Content-Length header is not a number",
            )
        if int(declared) > limit:
            raise _too_large(limit)
    return parse_form(await read_body(request, limit), request.headers.get("content-type"))


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes: read no further (413 ``invalid_request``)."""
    # ASGI messages read directly (Request.stream() wraps each in an async generator).
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> InvalidRequest:
    return InvalidRequest(
        "request body too large",
        status_code=413,
        error_description=f"the body exceeds {limit} bytes",
    )


def bearer_token(request: Request) -> str | None:
    """The token of the request's one ``Authorization: Bearer`` header; None when there
    is none, more than one, another scheme, or an empty token."""
    headers = request.headers.getlist("authorization")
    if len(headers) != 1:
        return None
    scheme, _, token = headers[0].partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def reads_are_local(ctx: ServerContext) -> bool:
    """Whether what a request reads is on this machine: a SQLite store (in WAL mode, where
    a read never waits for a writer) and no Redis. Then the reads take microseconds, less
    than handing the request to a worker thread and back would; over a network (PostgreSQL,
    Redis) they leave the event loop."""
    return ctx.redis is None and ctx.store.is_local


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authenticate_client(
    ctx: ServerContext,
    authorization: str | None,
    params: FormParams,
    address: str,
    credentials: ClientCredentials | None = None,
    *,
    certificate: ClientCertificate | None = None,
) -> ClientRecord:
    """The authenticated client, with failed attempts counted and throttled (blocking).

    ``credentials`` are the ones already read from this request, if the caller has them;
    ``certificate`` is the client certificate of its TLS connection, if any.
    """
    retry_after = ctx.limiter.blocked(address)
    if retry_after is not None:
        count_throttled()
        audit("throttled", address=address, retry_after=math.ceil(retry_after))
        raise _rate_limited(retry_after)
    try:
        if credentials is None:
            credentials = client_credentials(authorization, params)
        note_client(credentials.client_id)
        client = ctx.clients.authenticate(credentials, certificate)
    except InvalidClient as refused:
        ctx.limiter.record_failure(address)
        count_refusal(refused.message)
        audit(
            "authentication_refused",
            client_id=credentials.client_id if credentials is not None else None,
            method=credentials.method.value if credentials is not None else None,
            reason=refused.message,
            address=address,
        )
        raise
    note_client(client.client_id, authenticated=True)
    return client


def _rate_limited(retry_after: float) -> RateLimited:
    return RateLimited("too many failed client authentications", retry_after=retry_after)


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers={**NO_STORE, **(headers or {})})


def error_response(error: OAuthError | RateLimited, *, issuer: str, basic: bool) -> Response:
    """RFC 6749 §5.2 JSON error with the right status and headers."""
    if isinstance(error, RateLimited):
        seconds = math.ceil(error.retry_after or 1)
        return json_response(
            {
                "error": THROTTLED_ERROR,
                "error_description": "too many failed client authentications from this"
                " address: retry after the time in Retry-After",
            },
            429,
            {"Retry-After": str(seconds)},
        )
    body = {"error": error.error}
    if error.error_description:
        body["error_description"] = error.error_description
    status = error.status_code
    headers: dict[str, str] = {}
    if isinstance(error, InvalidClient):
        # RFC 6749 §5.2: 401 with a challenge when the client tried Basic; 400 otherwise.
        if basic:
            status = 401
            headers["WWW-Authenticate"] = f'Basic realm="{issuer}", charset="UTF-8"'
        else:
            status = 400
    return json_response(body, status, headers)
