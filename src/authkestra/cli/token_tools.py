"""``authkestra introspect``, ``revoke`` and ``decode``: look at a token without curl.

The token is read from standard input or ``--token-file``, never from the command line
(where ``ps`` and shell history keep it). ``introspect`` and ``revoke`` ask the
authorization server, as the client of the environment (``AUTHKESTRA_CLIENT_ID``,
``AUTHKESTRA_CLIENT_SECRET`` or ``..._FILE``, ``AUTHKESTRA_ISSUER``), whose endpoints
come from the issuer's metadata; ``decode`` reads a JWT locally and verifies nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from ._store_options import fail, print_json
from .exit_codes import ExitCode, exit_code_for

if TYPE_CHECKING:
    from . import Environment

__all__ = ["register"]

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


def _endpoint_and_auth(env: Environment, name: str) -> tuple[str, tuple[str, str]]:
    """The server's ``name`` endpoint (from its RFC 8414 metadata) and the environment's
    client id and secret."""
    import httpx

    from .._protocol.urls import check_endpoint_url, metadata_urls
    from ..errors import AuthError, ConfigError
    from ..flow.environment import flow_arguments_from_env

    try:
        args = flow_arguments_from_env(env.environ)
        issuer = args.get("issuer")
        if not issuer:
            raise ConfigError(f"AUTHKESTRA_ISSUER is not set: it says where the {name} is")
        check_endpoint_url(issuer, what="AUTHKESTRA_ISSUER", allow_insecure_http=False)
    except AuthError as exc:
        raise fail(env, str(exc), exit_code_for(exc)) from None
    secret = args.get("client_secret")
    if secret is None:
        raise fail(
            env,
            f"the {name} endpoint is called with the client's secret: set"
            " AUTHKESTRA_CLIENT_SECRET (or AUTHKESTRA_CLIENT_SECRET_FILE)",
        )
    document: Any = None
    for url in metadata_urls(issuer):
        try:
            answer = httpx.get(url, timeout=10)
            document = answer.json() if answer.status_code == 200 else None
        except httpx.HTTPError:
            raise fail(env, f"{issuer}: no answer", ExitCode.NETWORK) from None
        except ValueError:
            document = None
        if isinstance(document, dict):
            break
    endpoint = document.get(f"{name}_endpoint") if isinstance(document, dict) else None
    if not isinstance(endpoint, str):
        raise fail(env, f"{issuer} advertises no {name}_endpoint", ExitCode.PROVIDER_ERROR)
    from ..secrets import FileSecret, Secret

    if isinstance(secret, FileSecret):
        secret = secret.read()
    value = secret.get_secret_value() if isinstance(secret, Secret) else str(secret)
    return endpoint, (str(args["client_id"]), value)


def _post(env: Environment, name: str, token: str, hint: str | None) -> Any:
    import httpx

    endpoint, credentials = _endpoint_and_auth(env, name)
    data = {"token": token}
    if hint is not None:
        data["token_type_hint"] = hint
    try:
        answer = httpx.post(endpoint, data=data, auth=credentials, timeout=30)
    except httpx.HTTPError as exc:
        raise fail(env, f"{endpoint}: no answer ({type(exc).__name__})", ExitCode.NETWORK) from None
    if answer.status_code != 200:
        try:
            error = answer.json()
        except ValueError:
            error = {}
        described = error.get("error_description") or error.get("error") or answer.reason_phrase
        code = ExitCode.INVALID_CLIENT if answer.status_code == 401 else ExitCode.OAUTH_ERROR
        raise fail(env, f"{endpoint}: {answer.status_code} {str(described)[:200]}", code)
    return answer


def introspect(
    ctx: typer.Context, token_file: TokenFileOption = None, type_hint: HintOption = None
) -> None:
    """Ask the server about a token (RFC 7662): prints its answer as JSON.

    An inactive token prints {"active": false} and exits 1. The client of the
    environment needs the right to introspect (clients update --can-introspect).
    """
    env: Environment = ctx.obj
    token = _read_token(env, token_file)
    answer = _post(env, "introspection", token, type_hint)
    try:
        document = answer.json()
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
    _post(env, "revocation", token, type_hint)
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
