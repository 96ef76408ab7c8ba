"""``authkestra introspect``, ``revoke`` and ``decode``: look at a token without curl.

The token is read from standard input or ``--token-file``, never from the command line
(where ``ps`` and shell history keep it). ``introspect`` and ``revoke`` ask the
authorization server, as the client of the environment (``AUTHKESTRA_CLIENT_ID``,
``AUTHKESTRA_CLIENT_SECRET`` or ``..._FILE``, ``AUTHKESTRA_ISSUER``), whose endpoints
come from the issuer's metadata; ``decode`` reads a JWT locally and verifies nothing.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from typer.core import TyperCommand

from .._protocol.client_auth import AuthMethod
from ._store_options import fail, print_json
from .exit_codes import ExitCode, exit_code_for

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]

#: How these commands authenticate to the server: with the client's secret.
_AUTH_METHODS = (AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST)
#: The longest token read (an RFC 9068 token is a few hundred bytes to a few KiB).
MAX_TOKEN_BYTES = 16 * 1024
TOKEN_WAYS = "pipe it on standard input, or give --token-file PATH"


class _NoTokenOnArgv(TyperCommand):
    """Refuses any argument that is not an option (a token pasted on the command line),
    before parsing, without repeating it."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        value_of_option = False
        for arg in args:
            if arg == "--":
                break
            if value_of_option:  # the value of --token-file / --type-hint
                value_of_option = False
                continue
            if arg in _OPTIONS_WITH_VALUES:
                value_of_option = True
                continue
            if not arg.startswith("-"):  # these commands take no argument: it is a token
                raise typer.BadParameter(
                    "a token is never taken from the command line, where other users see it"
                    f" (ps, /proc) and shell history keeps it: {TOKEN_WAYS}",
                    ctx=ctx,
                )
        return super().parse_args(ctx, args)


_OPTIONS_WITH_VALUES = frozenset({"--token-file", "--type-hint"})


TokenFileOption = Annotated[
    Path | None,
    typer.Option("--token-file", metavar="PATH", help="Read the token from this file."),
]
HintOption = Annotated[
    str | None,
    typer.Option("--type-hint", help="access_token or refresh_token (RFC 7662/7009)."),
]


def _read_token(env: Environment, token_file: Path | None) -> str:
    try:
        if token_file is not None:
            with token_file.open("rb") as source:
                raw = source.read(MAX_TOKEN_BYTES + 1)
        else:
            raw = env.stdin.read(MAX_TOKEN_BYTES + 1).encode("utf-8", "replace")
    except OSError as exc:
        raise fail(env, f"--token-file: cannot read it ({exc.strerror})", ExitCode.USAGE) from None
    if len(raw) > MAX_TOKEN_BYTES:
        raise fail(env, f"the token is longer than {MAX_TOKEN_BYTES} bytes", ExitCode.USAGE)
    token = raw.decode("utf-8", "replace").strip()
    if not token or any(c.isspace() for c in token):
        raise fail(env, f"no token read: {TOKEN_WAYS}", ExitCode.USAGE)
    return token


def _ask_server(env: Environment, name: str, token: str, hint: str | None) -> bytes:
    """POST ``token`` to the server's ``name`` endpoint as the environment's client; the
    answer's body. Through the library's own protocol: the endpoint from the issuer's
    metadata (discovered and checked as a flow does: the issuer must match, the endpoint
    must be https), client_secret_basic or _post, retries, typed errors with every
    secret and the token masked -- each failure one line with its exit code."""
    from .._io.drivers import Drivers
    from .._protocol.context import ProtocolContext
    from .._protocol.redact import Redactor
    from .._protocol.retry import RetryPolicy
    from .._version import __version__
    from ..errors import AuthError, ConfigError
    from ..flow.environment import flow_arguments_from_env
    from ..secrets import to_secret_source

    try:
        args = flow_arguments_from_env(env.environ)
        issuer = args.get("issuer")
        if not issuer:
            raise ConfigError(f"AUTHKESTRA_ISSUER is not set: it says where the {name} is")
        method = AuthMethod.parse(args.get("auth_method") or AuthMethod.CLIENT_SECRET_BASIC)
        source = to_secret_source(args.get("client_secret"))
        if method not in _AUTH_METHODS or source is None:
            raise ConfigError(
                f"the {name} endpoint is called with the client's secret"
                " (client_secret_basic or client_secret_post): set AUTHKESTRA_CLIENT_SECRET"
                " (or AUTHKESTRA_CLIENT_SECRET_FILE)"
            )
        clock = time.monotonic
        protocol = ProtocolContext(
            policy=RetryPolicy(max_attempts=2, base_backoff=0.2, max_backoff=1.0, total_timeout=30),
            clock=clock,
            wall_clock=lambda: datetime.now(timezone.utc),
            max_body=64 * 1024,
            user_agent=f"authkestra/{__version__}",
            redact=Redactor(),
        )
        drivers = Drivers(timeout=httpx.Timeout(10.0), clock=clock, secret_source=source)
        operation = _post_token(protocol, issuer, name, str(args["client_id"]), method, token, hint)
        body: bytes = drivers.sync.run(operation)
        return body
    except AuthError as exc:
        raise fail(env, str(exc), exit_code_for(exc)) from None


def _post_token(
    ctx: Any,
    issuer: str,
    name: str,
    client_id: str,
    method: Any,
    token: str,
    hint: str | None,
) -> Any:
    """The operation: discover ``name``'s endpoint, POST the token there, check the answer."""
    from .._protocol.actions import HttpRequest, ReadSecret
    from .._protocol.discovery import discover
    from .._protocol.redact import Redactor
    from .._protocol.responses import raise_for_failure
    from .._protocol.retry import send_with_retries
    from .._protocol.token_request import build_authenticated_post

    metadata = yield from discover(issuer, ctx, require=f"{name}_endpoint")
    secret: str = yield ReadSecret()
    redact = Redactor([token])
    redact.add(secret, client_id=client_id)
    params = [("token", token)] + ([("token_type_hint", hint)] if hint is not None else [])

    def request(deadline: float) -> HttpRequest:
        return build_authenticated_post(
            metadata.endpoint,
            params,
            client_id=client_id,
            secret=secret,
            auth_method=method,
            form_encode_basic=True,
            deadline=deadline,
            max_body=ctx.max_body,
            user_agent=ctx.user_agent,
        )

    response = yield from send_with_retries(request, ctx.policy, ctx.clock, what=f"{name} request")
    raise_for_failure(response, redact, what=f"the {name} endpoint")
    return response.body


def introspect(
    ctx: typer.Context, token_file: TokenFileOption = None, type_hint: HintOption = None
) -> None:
    """Ask the server about a token (RFC 7662): prints its answer as JSON.

    An inactive token prints {"active": false} and exits 1. The client of the
    environment needs the right to introspect (clients update --can-introspect).
    """
    env: Environment = ctx.obj
    token = _read_token(env, token_file)
    body = _ask_server(env, "introspection", token, type_hint)
    try:
        document = json.loads(body)
    except ValueError:
        raise fail(
            env, "the introspection answer is not JSON", ExitCode.MALFORMED_RESPONSE
        ) from None
    print_json(env, document)
    if not (isinstance(document, dict) and document.get("active") is True):
        raise typer.Exit(1)


def revoke(
    ctx: typer.Context, token_file: TokenFileOption = None, type_hint: HintOption = None
) -> None:
    """Revoke a token (RFC 7009) of the environment's client."""
    env: Environment = ctx.obj
    token = _read_token(env, token_file)
    _ask_server(env, "revocation", token, type_hint)
    env.stdout.write("revoked (or it was not a token of this client: RFC 7009 answers alike)\n")


def decode(ctx: typer.Context, token_file: TokenFileOption = None) -> None:
    """Print a JWT's header and claims as JSON, with its times readable. Verifies nothing:
    ask the server (introspect) or an API's verifier whether to trust it."""
    env: Environment = ctx.obj
    token = _read_token(env, token_file)
    from .._jose.compact import MalformedJWS, parse_compact

    try:
        jws = parse_compact(token, max_length=MAX_TOKEN_BYTES)
    except MalformedJWS as exc:
        raise fail(env, f"not a JWT ({exc})", ExitCode.USAGE) from None
    from datetime import datetime, timezone

    times = {
        name: datetime.fromtimestamp(value, timezone.utc).isoformat(timespec="seconds")
        for name in ("iat", "nbf", "exp")
        if isinstance(value := jws.claims.get(name), int) and 0 <= value < 2**37
    }
    print_json(env, {"header": jws.header, "claims": jws.claims, "times": times,
                     "verified": False})  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``introspect``, ``revoke`` and ``decode`` to the ``authkestra`` app."""
    for name, command in (("introspect", introspect), ("revoke", revoke), ("decode", decode)):
        app.command(name, cls=_NoTokenOnArgv)(command)
