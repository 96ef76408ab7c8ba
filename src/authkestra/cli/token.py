"""``authkestra token``: obtain an access token and print it, for shell scripts and CI jobs."""

from __future__ import annotations

import enum
import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from typer.core import TyperCommand

from .._protocol.client_auth import AuthMethod
from .._protocol.redact import Redactor
from .._protocol.retry import RetryPolicy
from ..assertions import AssertionFile
from ..cache.file import FileCache
from ..errors import (
    AuthError,
    ClientAssertionError,
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
from ..flow.client_credentials import ClientCredentialsFlow
from ..flow.environment import ENV_PREFIX, flow_arguments_from_env
from ..secrets import FileSecret, Secret
from ..token import Token
from .exit_codes import ExitCode, exit_code_for

if TYPE_CHECKING:
    from . import Environment

__all__ = ["OutputFormat", "hint_for", "register", "render", "token_command"]

SECRET_OPTION = "--client-secret"
SECRET_WAYS = (
    "use the AUTHKESTRA_CLIENT_SECRET environment variable, --client-secret-file PATH"
    " or --client-secret-stdin"
)
#: Error messages are cut here: one readable line, whatever a server sent.
MESSAGE_LIMIT = 500


class OutputFormat(str, enum.Enum):
    """What ``authkestra token`` prints on success."""

    RAW = "raw"
    """The access token alone."""
    JSON = "json"
    """The token and what is known about it, as one JSON object."""
    HEADER = "header"
    """A ready ``Authorization: Bearer ...`` header line."""


class _TokenCommand(TyperCommand):
    """Refuses ``--client-secret`` before parsing, pointing to the safe ways instead.

    The check runs on the raw arguments, so the refusal names the safe ways
    whether the option comes with a value, with ``=value`` or with none, and
    no part of a value ever reaches an error message.
    """

    # ctx is click's Context: typer vendors click in some versions and not in
    # others, so it is not named here.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        for arg in args:
            if arg == "--":
                break
            if arg == SECRET_OPTION or arg.startswith(SECRET_OPTION + "="):
                raise typer.BadParameter(
                    "the client secret is never taken from the command line, where other"
                    " users see it (ps, /proc) and shell history keeps it; " + SECRET_WAYS,
                    ctx=ctx,
                    param_hint=f"'{SECRET_OPTION}'",
                )
        return super().parse_args(ctx, args)


def _positive_seconds(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter("must be a number of seconds greater than 0")
    return value


def token_command(
    ctx: typer.Context,
    *,
    token_url: Annotated[
        str | None,
        typer.Option(
            "--token-url", metavar="URL", help="The token endpoint [env: AUTHKESTRA_TOKEN_URL]."
        ),
    ] = None,
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer",
            metavar="URL",
            help="The issuer, to discover the token endpoint from [env: AUTHKESTRA_ISSUER].",
        ),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", metavar="ID", help="[env: AUTHKESTRA_CLIENT_ID]"),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="A scope to ask for; repeat, or give several separated by spaces"
            " [env: AUTHKESTRA_SCOPES].",
        ),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option("--audience", metavar="AUDIENCE", help="[env: AUTHKESTRA_AUDIENCE]"),
    ] = None,
    resource: Annotated[
        list[str] | None,
        typer.Option(
            "--resource",
            metavar="URI",
            help="An RFC 8707 resource indicator; repeatable [env: AUTHKESTRA_RESOURCE].",
        ),
    ] = None,
    auth_method: Annotated[
        AuthMethod | None,
        typer.Option(
            "--auth-method",
            case_sensitive=False,
            help="How to authenticate [env: AUTHKESTRA_AUTH_METHOD; default client_secret_basic].",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="raw: the token alone; json: token, type, expiry and scope;"
            " header: an Authorization header line.",
        ),
    ] = OutputFormat.RAW,
    client_secret_file: Annotated[
        str | None,
        typer.Option(
            "--client-secret-file",
            metavar="PATH",
            help="Read the client secret from this file [env: AUTHKESTRA_CLIENT_SECRET_FILE].",
        ),
    ] = None,
    for_resource: Annotated[
        str | None,
        typer.Option(
            "--for",
            metavar="URL",
            help="Instead of --token-url/--issuer: the API the token is for; its RFC 9728"
            " metadata names the authorization server, and the token is asked for it.",
        ),
    ] = None,
    client_assertion_file: Annotated[
        Path | None,
        typer.Option(
            "--client-assertion-file",
            metavar="PATH",
            help="private_key_jwt with the platform's assertion: the file it keeps the"
            " workload's JWT in, e.g. a Kubernetes projected service-account token"
            " [env: AUTHKESTRA_CLIENT_ASSERTION_FILE].",
        ),
    ] = None,
    client_secret_stdin: Annotated[
        bool,
        typer.Option(
            "--client-secret-stdin",
            help="Read the client secret from standard input (one trailing newline removed).",
        ),
    ] = False,
    allow_insecure_http: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-http",
            help="Allow plain http to a host other than loopback.",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            callback=_positive_seconds,
            help="Limit for each connect, read and write [default: 5 to connect, 10 otherwise].",
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            metavar="N",
            min=0,
            help="Retries after a network failure, HTTP 5xx or 429.",
        ),
    ] = RetryPolicy().max_attempts - 1,
    private_key_file: Annotated[
        Path | None,
        typer.Option(
            "--private-key-file",
            metavar="PATH",
            help="private_key_jwt: the client's private key, PEM or JWK"
            " [env: AUTHKESTRA_PRIVATE_KEY_FILE].",
        ),
    ] = None,
    key_id: Annotated[
        str | None,
        typer.Option(
            "--key-id", metavar="KID", help="The kid of that key [env: AUTHKESTRA_KEY_ID]."
        ),
    ] = None,
    client_cert: Annotated[
        Path | None,
        typer.Option(
            "--client-cert",
            metavar="PATH",
            help="Mutual TLS: the client certificate (PEM; with its key unless --client-key)"
            " [env: AUTHKESTRA_CLIENT_CERT_FILE].",
        ),
    ] = None,
    client_key: Annotated[
        Path | None,
        typer.Option(
            "--client-key",
            metavar="PATH",
            help="The client certificate's key [env: AUTHKESTRA_CLIENT_KEY_FILE].",
        ),
    ] = None,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(
            "--ca-bundle",
            metavar="PATH",
            help="CAs of the server's certificate (a private CA) [env: AUTHKESTRA_CA_BUNDLE].",
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            metavar="PATH",
            help=(
                "Keep tokens in this file (mode 0600) and reuse them while fresh, so"
                " repeated runs (cron jobs, scripts) share one token."
                " [env: AUTHKESTRA_TOKEN_CACHE]"
            ),
        ),
    ] = None,
) -> None:
    """Obtain an access token with the Client Credentials grant and print it.

    Settings come from the same AUTHKESTRA_* environment variables as
    ClientCredentialsFlow.from_env(); an option overrides its variable.

    \b
    The client secret is never an option (other users could read it); give one of:
      AUTHKESTRA_CLIENT_SECRET        the secret itself
      AUTHKESTRA_CLIENT_SECRET_FILE   a file holding it (or --client-secret-file PATH)
      --client-secret-stdin           read it from standard input

    \b
    Keys instead of a secret: --private-key-file PATH (private_key_jwt);
    --client-assertion-file PATH (the platform's JWT, e.g. a Kubernetes service-account
    token); --auth-method tls_client_auth --client-cert PATH [--client-key PATH].

    \b
    Examples:
      authkestra token --format header --scope read | curl -H @- https://api.example.com/
      vault kv get -field=secret kv/svc | authkestra token --client-secret-stdin
    """
    env: Environment = ctx.obj  # set by the app's callback before any command runs
    if sum(x is not None for x in (token_url, issuer, for_resource)) > 1:
        raise typer.BadParameter("give one of --token-url, --issuer and --for", ctx=ctx)
    if client_secret_file is not None and client_secret_stdin:
        raise typer.BadParameter(
            "give --client-secret-file or --client-secret-stdin, not both", ctx=ctx
        )
    if client_key is not None and client_cert is None:
        raise typer.BadParameter("--client-key goes with --client-cert", ctx=ctx)
    if client_assertion_file is not None and (client_secret_file or client_secret_stdin):
        raise typer.BadParameter(
            "give --client-assertion-file or a client secret, not both", ctx=ctx
        )

    redact = Redactor()
    try:
        client_secret: Secret | FileSecret | None = None
        if client_secret_file is not None:
            client_secret = FileSecret(client_secret_file)
        elif client_secret_stdin:
            client_secret = _read_secret(env.stdin, env.stderr)
        # A long --timeout must not be cut short by the overall retry deadline.
        total_timeout = max(RetryPolicy().total_timeout, timeout or 0.0)
        policy = RetryPolicy(max_attempts=retries + 1, total_timeout=total_timeout)
        overrides: dict[str, Any] = {
            "client_id": client_id,
            "client_secret": client_secret,
            "token_url": token_url,
            "issuer": issuer,
            "protected_resource": for_resource,
            "scopes": _split_scopes(scope),
            "audience": audience,
            "resource": resource or None,
            "auth_method": auth_method.value if auth_method is not None else None,
            "allow_insecure_http": allow_insecure_http or None,
            "timeout": timeout,
            "retry": policy,
            "cache": _file_cache(cache, env),
            "private_key": str(private_key_file) if private_key_file else None,
            "client_assertion": (
                AssertionFile(client_assertion_file) if client_assertion_file else None
            ),
            "key_id": key_id,
            "client_cert": _client_cert(client_cert, client_key),
            "ca_bundle": str(ca_bundle) if ca_bundle else None,
        }
        token = _obtain(env, overrides, redact)
    except KeyboardInterrupt:
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except Exception as exc:
        # Every failure, the unexpected included, ends as one line and an exit code.
        raise typer.Exit(report_failure(env.stderr, exc, redact)) from None
    env.stdout.write(render(token, output_format))
    env.stdout.flush()


def _obtain(env: Environment, overrides: dict[str, Any], redact: Redactor) -> Token:
    def warn(message: str) -> None:
        env.stderr.write(f"authkestra: warning: {message}\n")

    arguments = flow_arguments_from_env(env.environ, overrides, warn=warn)
    # Mask every secret the command knows of, the unused one from the environment too.
    for secret in (env.environ.get(ENV_PREFIX + "CLIENT_SECRET"), _secret_text(arguments)):
        if secret:
            redact.add(secret, client_id=arguments["client_id"])
    flow = ClientCredentialsFlow(**arguments)
    return flow.get_token_sync()


def _client_cert(cert: Path | None, key: Path | None) -> str | tuple[str, str] | None:
    if cert is None:
        return None
    return (str(cert), str(key)) if key is not None else str(cert)


def _file_cache(option: Path | None, env: Environment) -> FileCache | None:
    path = option or env.environ.get(ENV_PREFIX + "TOKEN_CACHE") or None
    return FileCache(path) if path else None


def _secret_text(arguments: dict[str, Any]) -> str | None:
    """The client secret in ``arguments``, read now if it comes from a file."""
    secret = arguments.get("client_secret")
    if isinstance(secret, FileSecret):
        secret = secret.read()  # fails here, naming the file, rather than at the request
    return secret.get_secret_value() if isinstance(secret, Secret) else None


def _read_secret(stdin: TextIO, stderr: TextIO) -> Secret:
    """The client secret from standard input, without its one trailing line break."""
    if stdin.isatty():
        # Typed at a terminal: do not echo it.
        text = getpass.getpass("client secret: ", stream=stderr)
    else:
        text = stdin.read()
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
    if not text:
        raise ConfigError("--client-secret-stdin: standard input holds no client secret")
    return Secret(text)


def _split_scopes(values: list[str] | None) -> list[str] | None:
    # Each --scope may itself hold several, as AUTHKESTRA_SCOPES does.
    if not values:
        return None
    return [scope for value in values for scope in value.split()]


def render(token: Token, output_format: OutputFormat) -> str:
    """The text ``authkestra token`` prints for ``token``, final newline included."""
    if output_format is OutputFormat.JSON:
        expires_at = token.expires_at.isoformat(timespec="seconds") if token.expires_at else None
        document = {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_in": token.expires_in,
            "expires_at": expires_at,
            "scope": token.scope,
        }
        return json.dumps(document) + "\n"
    if output_format is OutputFormat.HEADER:
        return f"Authorization: {token.authorization}\n"
    return token.access_token + "\n"


#: Exception class -> a next step for the user, found through the MRO like exit codes.
HINTS: dict[type[BaseException], str] = {
    ConfigError: "see 'authkestra token --help' for the options and AUTHKESTRA_* variables",
    ClientAssertionError: "the platform gives the workload this file: check its mount and"
    " that it is renewed (a Kubernetes projected token, AZURE_FEDERATED_TOKEN_FILE)",
    NetworkError: "check the token URL or issuer, and that the server is reachable from here",
    InvalidClient: "check the client id and its credential (secret, key or assertion),"
    " and --auth-method",
    InvalidScope: "ask only for scopes this client is allowed (--scope, AUTHKESTRA_SCOPES)",
    InvalidTarget: "check --audience and --resource against what the server accepts",
    RateLimited: "the server asks to slow down: wait before trying again",
    MalformedResponse: "check that the URL is the server's token endpoint or issuer",
    # The server's own error code and description say it better than a generic hint.
    OAuthError: "",
    ProviderError: "if the URL is right, the authorization server is failing: try again later",
    # A newer AuthError subclass is no bug: its message has to do on its own.
    AuthError: "",
    Exception: "this is a bug in authkestra: please report it",
}


def hint_for(exc: BaseException) -> str:
    """A short next step for ``exc``, or an empty string when there is none worth saying."""
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return f"the server asks to wait {exc.retry_after:.0f} s before trying again"
    for cls in type(exc).__mro__:
        if cls in HINTS:
            return HINTS[cls]
    return ""


def report_failure(stderr: TextIO, exc: BaseException, redact: Redactor) -> int:
    """Print ``exc`` as ``authkestra: error: ...`` (and a hint) on ``stderr``; return its code."""
    if isinstance(exc, AuthError):
        # The library keeps secrets out of its messages; masking again costs nothing.
        message = redact.clean(str(exc), limit=MESSAGE_LIMIT)
    else:
        # Anything else's text could quote anything, the secret included: name the type only.
        message = f"unexpected {type(exc).__name__}"
    stderr.write(f"authkestra: error: {message}\n")
    hint = hint_for(exc)
    if hint:
        stderr.write(f"authkestra: hint: {hint}\n")
    stderr.flush()
    return exit_code_for(exc)


def register(app: typer.Typer) -> None:
    """Add ``token`` to the ``authkestra`` app."""
    app.command("token", cls=_TokenCommand)(token_command)
