"""``authkestra clients``: register and manage the clients of the authorization server."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .._protocol.client_auth import AuthMethod
from ._store_options import DbOption, fail, open_store, print_json

if TYPE_CHECKING:
    from ..server.settings import ServerSettings
    from ..server.store import ClientRecord, Store
    from . import Environment

__all__ = ["register"]

clients_app = typer.Typer(
    help="Register and manage clients (services that get tokens).", no_args_is_help=True
)

#: The client authentication methods the authorization server accepts.
SERVER_AUTH_METHODS = (
    AuthMethod.CLIENT_SECRET_BASIC,
    AuthMethod.CLIENT_SECRET_POST,
    AuthMethod.PRIVATE_KEY_JWT,
    AuthMethod.CLIENT_SECRET_JWT,
    AuthMethod.TLS_CLIENT_AUTH,
    AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH,
)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
FormatOption = Annotated[str, typer.Option("--format", help="text or json.")]
JwksOption = Annotated[
    str | None,
    typer.Option(
        "--jwks",
        metavar="FILE|JSON",
        help="private_key_jwt: the client's public keys: a JWK Set, a JWK or a PEM public key"
        " (a file, or the JSON itself).",
    ),
]
JwksUriOption = Annotated[
    str | None,
    typer.Option(
        "--jwks-uri",
        metavar="URL",
        help="private_key_jwt: an https URL the server fetches the client's JWK Set from.",
    ),
]


_SUBJECT_HELP = "tls_client_auth: the certificate's {} (exactly one of the --tls-* options)."
TlsSubjectDnOption = Annotated[
    str | None,
    typer.Option("--tls-subject-dn", metavar="DN", help=_SUBJECT_HELP.format("subject DN")),
]
TlsSanDnsOption = Annotated[
    str | None, typer.Option("--tls-san-dns", help=_SUBJECT_HELP.format("DNS name (SAN)"))
]
TlsSanUriOption = Annotated[
    str | None, typer.Option("--tls-san-uri", help=_SUBJECT_HELP.format("URI (SAN)"))
]
TlsSanIpOption = Annotated[
    str | None, typer.Option("--tls-san-ip", help=_SUBJECT_HELP.format("IP address (SAN)"))
]
TlsSanEmailOption = Annotated[
    str | None, typer.Option("--tls-san-email", help=_SUBJECT_HELP.format("e-mail (SAN)"))
]
CertOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--cert",
        metavar="PEM",
        help="self_signed_tls_client_auth: the client's self-signed certificate (repeatable).",
    ),
]


def _check_format(env: Environment, value: str) -> None:
    if value not in ("text", "json"):
        raise fail(env, "--format must be text or json", 2)


def _describe(client: ClientRecord) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "auth_method": client.auth_method,
        "scopes": list(client.scopes),
        "default_scopes": list(client.default_scopes)
        if client.default_scopes is not None
        else None,
        "audiences": list(client.audiences),
        "token_ttl": client.token_ttl,
        "enabled": client.enabled,
        "created_at": client.created_at.isoformat(timespec="seconds"),
    }


def _read_jwks(env: Environment, value: str) -> tuple[str, list[str]]:
    """``--jwks``: (the checked public JWK Set as JSON, its kids)."""
    from ..server.client_keys import InvalidJwks, normalize_jwks

    text = value
    if not value.lstrip().startswith(("{", "-----")):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise fail(env, f"cannot read the --jwks file {value!r}: {reason}", 2) from None
    try:
        return normalize_jwks(text)
    except InvalidJwks as exc:
        raise fail(env, f"--jwks: {exc}", 2) from None


def _check_jwks_uri(env: Environment, settings: ServerSettings, uri: str) -> str:
    from ..server.jwks_uri import JwksUriError, check_jwks_uri

    try:
        return check_jwks_uri(uri, allow_insecure=settings.allow_insecure_jwks_uri)
    except JwksUriError as exc:
        raise fail(env, f"--jwks-uri: {exc}", 2) from None


def _key_options(
    env: Environment, method: AuthMethod, jwks: str | None, jwks_uri: str | None
) -> tuple[str, list[str]] | None:
    """Check --jwks / --jwks-uri against the method; the parsed --jwks, if given."""
    if method is AuthMethod.PRIVATE_KEY_JWT:
        if (jwks is None) == (jwks_uri is None):
            raise fail(
                env, "private_key_jwt needs the client's public keys: --jwks or --jwks-uri", 2
            )
    elif method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH and jwks_uri is None:
        pass  # --jwks (with x5c) or --cert, checked with the certificates
    elif jwks is not None or jwks_uri is not None:
        raise fail(env, "--jwks and --jwks-uri go with --auth-method private_key_jwt", 2)
    return _read_jwks(env, jwks) if jwks is not None else None


def _print_keys(
    env: Environment, output: str, client_id: str, kids: list[str] | None, jwks_uri: str | None
) -> None:
    document: dict[str, object] = {"client_id": client_id, "auth_method": "private_key_jwt"}
    if jwks_uri is not None:
        document["jwks_uri"] = jwks_uri
    else:
        document["jwks_kids"] = kids or []
    if output == "json":
        print_json(env, document)
        return
    env.stdout.write(f"client_id:     {client_id}\nauth_method:   private_key_jwt\n")
    if jwks_uri is not None:
        env.stdout.write(f"jwks_uri:      {jwks_uri}\n")
    else:
        env.stdout.write(f"keys (kid):    {' '.join(kids or [])}\n")
    env.stdout.flush()


def _print_secret(env: Environment, output: str, client_id: str, secret: str, note: str) -> None:
    if output == "json":
        print_json(env, {"client_id": client_id, "client_secret": secret})
        return
    env.stdout.write(f"client_id:     {client_id}\nclient_secret: {secret}\n")
    env.stdout.flush()
    env.stderr.write(f"{note}\n")


@clients_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The client id, e.g. billing-service.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope it may ask for (repeatable).")
    ] = None,
    default_scope: Annotated[
        list[str] | None,
        typer.Option("--default-scope", help="Granted when it asks for none (default: all)."),
    ] = None,
    audience: Annotated[
        list[str] | None,
        typer.Option("--audience", help="An API (resource/audience) its tokens may be for."),
    ] = None,
    auth_method: Annotated[
        AuthMethod, typer.Option("--auth-method")
    ] = AuthMethod.CLIENT_SECRET_BASIC,
    token_ttl: Annotated[
        int | None, typer.Option("--token-ttl", min=1, max=86400, help="Seconds.")
    ] = None,
    jwks: JwksOption = None,
    jwks_uri: JwksUriOption = None,
    tls_subject_dn: TlsSubjectDnOption = None,
    tls_san_dns: TlsSanDnsOption = None,
    tls_san_uri: TlsSanUriOption = None,
    tls_san_ip: TlsSanIpOption = None,
    tls_san_email: TlsSanEmailOption = None,
    cert: CertOption = None,
    output: FormatOption = "text",
    db: DbOption = None,
) -> None:
    """Register a client and print its id and a new 256-bit secret (shown only this once).

    A private_key_jwt client gets no secret: it signs assertions with its private key,
    and the server keeps its public keys (--jwks) or where to fetch them (--jwks-uri).
    A tls_client_auth client is known by its certificate's subject (--tls-subject-dn or
    one --tls-san-*), a self_signed_tls_client_auth client by its certificate (--cert).
    """
    env: Environment = ctx.obj
    _check_format(env, output)
    if not _CLIENT_ID.fullmatch(name):
        raise fail(env, "the client id may hold letters, digits and . _ ~ - (at most 128)", 2)
    if auth_method is AuthMethod.NONE:
        raise fail(
            env, "only confidential clients get client_credentials tokens: use a secret method", 2
        )
    if auth_method not in SERVER_AUTH_METHODS:
        raise fail(
            env,
            "this server authenticates clients with "
            + " or ".join(m.value for m in SERVER_AUTH_METHODS),
            2,
        )
    scopes = tuple(dict.fromkeys(s for value in scope or [] for s in value.split()))
    defaults = tuple(dict.fromkeys(s for value in default_scope or [] for s in value.split()))
    if any(not _SCOPE.fullmatch(s) for s in scopes):
        raise fail(env, "a scope has characters RFC 6749 does not allow", 2)
    if not set(defaults) <= set(scopes):
        raise fail(env, "--default-scope must be among its --scope values", 2)
    audiences = tuple(dict.fromkeys(audience or []))
    if any(not a or " " in a for a in audiences):
        raise fail(env, "an audience must be a non-empty URI without spaces", 2)
    key_set = _key_options(env, auth_method, jwks, jwks_uri)
    subjects = _subjects(tls_subject_dn, tls_san_dns, tls_san_uri, tls_san_ip, tls_san_email)
    tls_subject = _tls_subject(env, auth_method, subjects)
    if auth_method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH:
        key_set = _self_signed_certificates(env, cert or [], key_set)
    elif cert:
        raise fail(env, "--cert goes with --auth-method self_signed_tls_client_auth", 2)

    from ..server.context import hasher_for, secret_box_for
    from ..server.store import ClientExists, new_secret

    settings, store = open_store(env, db)
    secret = None if not auth_method.needs_secret else new_secret()
    try:
        if jwks_uri is not None:
            _check_jwks_uri(env, settings, jwks_uri)
        store.create_client(
            name,
            secret_hash=hasher_for(settings, store).hash(secret) if secret else None,
            encrypted_secret=secret_box_for(settings, store).encrypt(secret, name)
            if secret and auth_method is AuthMethod.CLIENT_SECRET_JWT
            else None,
            auth_method=auth_method.value,
            scopes=scopes,
            audiences=audiences,
            default_scopes=defaults or None,
            token_ttl=token_ttl,
            jwks=key_set[0] if key_set else None,
            jwks_uri=jwks_uri,
            tls_client_auth=tls_subject,
        )
    except ClientExists:
        raise fail(env, f"a client {name!r} already exists") from None
    finally:
        store.close()
    if auth_method.uses_tls:
        _print_certificate_client(env, output, name, auth_method, tls_subject, key_set)
        return
    if secret is None:
        _print_keys(env, output, name, key_set[1] if key_set else None, jwks_uri)
        return
    _print_secret(env, output, name, secret, "Store the secret now: it is shown only this once.")


def _subjects(*values: str | None) -> dict[str, str | None]:
    """The --tls-* options by the subject kind they name (in SUBJECT_KINDS order)."""
    from ..server.mtls import SUBJECT_KINDS

    return dict(zip(SUBJECT_KINDS, values, strict=True))


def _tls_subject(
    env: Environment, method: AuthMethod, subjects: dict[str, str | None]
) -> str | None:
    """The tls_client_auth subject as stored (JSON), from exactly one --tls-* option."""
    given = {kind: value for kind, value in subjects.items() if value is not None}
    if method is not AuthMethod.TLS_CLIENT_AUTH:
        if given:
            raise fail(env, "the --tls-* options go with --auth-method tls_client_auth", 2)
        return None
    if len(given) != 1:
        raise fail(
            env,
            "tls_client_auth needs exactly one of --tls-subject-dn, --tls-san-dns,"
            " --tls-san-uri, --tls-san-ip, --tls-san-email",
            2,
        )
    from ..server.mtls import TLSSubject

    ((kind, value),) = given.items()
    try:
        return TLSSubject(kind, value).to_json()
    except ValueError as exc:
        raise fail(env, f"--tls-{kind.replace('_', '-')}: {exc}", 2) from None


def _self_signed_certificates(
    env: Environment, paths: list[Path], key_set: tuple[str, list[str]] | None
) -> tuple[str, list[str]]:
    """The JWK Set (with x5c) of a self-signed client: from --cert files, or --jwks."""
    from ..server.client_keys import InvalidJwks, normalize_jwks
    from ..server.mtls import jwks_for_certificates, self_signed_pems

    if paths and key_set is not None:
        raise fail(env, "give the certificates with --cert or --jwks (x5c), not both", 2)
    if paths:
        try:
            document = jwks_for_certificates(p.read_text(encoding="utf-8") for p in paths)
            return normalize_jwks(json.dumps(document))
        except (OSError, UnicodeDecodeError, ValueError, InvalidJwks) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise fail(env, f"--cert: not a readable PEM certificate ({reason})", 2) from None
    if key_set is None or not self_signed_pems([key_set[0]]):
        raise fail(
            env,
            "self_signed_tls_client_auth needs the client's certificate: --cert PEM"
            " (or --jwks with x5c)",
            2,
        )
    return key_set


def _print_certificate_client(
    env: Environment,
    output: str,
    client_id: str,
    method: AuthMethod,
    subject: str | None,
    key_set: tuple[str, list[str]] | None,
) -> None:
    document: dict[str, object] = {"client_id": client_id, "auth_method": method.value}
    if subject is not None:
        document["tls_client_auth"] = json.loads(subject)
    if key_set is not None:
        document["key_ids"] = key_set[1]
    _print_document(env, output, document)


def _print_document(env: Environment, output: str, document: dict[str, object]) -> None:
    """JSON, or one ``name: value`` line per member."""
    if output == "json":
        print_json(env, document)
        return
    for key, value in document.items():
        env.stdout.write(f"{key + ':':16}{value}\n")
    env.stdout.flush()


@clients_app.command("list")
def list_clients(ctx: typer.Context, output: FormatOption = "text", db: DbOption = None) -> None:
    """List the registered clients."""
    env: Environment = ctx.obj
    _check_format(env, output)
    _, store = open_store(env, db)
    try:
        clients = store.list_clients()
    finally:
        store.close()
    if output == "json":
        print_json(env, [_describe(c) for c in clients])
        return
    for c in clients:
        state = "enabled" if c.enabled else "disabled"
        env.stdout.write(f"{c.client_id}\t{c.auth_method}\t{state}\tscopes={' '.join(c.scopes)}\n")
    env.stdout.flush()


@clients_app.command("show")
def show(
    ctx: typer.Context, client_id: str, output: FormatOption = "text", db: DbOption = None
) -> None:
    """Show one client: its method, its key ids or jwks_uri -- never a secret."""
    env: Environment = ctx.obj
    _check_format(env, output)
    from ..server.store import UnknownClient

    _, store = open_store(env, db)
    try:
        client = store.get_client(client_id)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    described = _describe(client)
    described["active_secrets"] = len(client.secrets)
    if client.tls_client_auth is not None:
        described["tls_client_auth"] = json.loads(client.tls_client_auth)
    if client.auth_method == AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH.value:
        from ..server.client_keys import jwks_kids

        described["certificate_kids"] = jwks_kids(client.jwks)
    if client.auth_method == AuthMethod.PRIVATE_KEY_JWT.value:
        from ..server.client_keys import jwks_kids

        if client.jwks_uri:
            described["jwks_uri"] = client.jwks_uri
        else:
            described["jwks_kids"] = jwks_kids(client.jwks)
    _print_document(env, output, described)


@clients_app.command("rotate-secret")
def rotate_secret(
    ctx: typer.Context,
    client_id: str,
    grace: Annotated[
        int | None,
        typer.Option(
            "--grace", min=0, help="Seconds the old secret keeps working [default: 86400]."
        ),
    ] = None,
    output: FormatOption = "text",
    db: DbOption = None,
) -> None:
    """Issue a new secret; the old one keeps working for the grace period."""
    env: Environment = ctx.obj
    _check_format(env, output)
    from ..server.context import hasher_for, secret_box_for
    from ..server.store import UnknownClient, new_secret

    settings, store = open_store(env, db)
    secret = new_secret()
    seconds = grace if grace is not None else settings.secret_grace_period
    try:
        client = _existing(env, store, client_id)
        if not AuthMethod.parse(client.auth_method).needs_secret:
            raise fail(
                env,
                f"{client_id!r} authenticates with its keys or certificate, not a secret:"
                " use 'clients set-keys'",
                2,
            )
        encrypted = (
            secret_box_for(settings, store).encrypt(secret, client_id)
            if client.auth_method == AuthMethod.CLIENT_SECRET_JWT.value
            else None
        )
        until = store.rotate_secret(
            client_id,
            hasher_for(settings, store).hash(secret),
            timedelta(seconds=seconds),
            encrypted_secret=encrypted,
        )
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    _print_secret(
        env,
        output,
        client_id,
        secret,
        f"The old secret keeps working until {until.isoformat(timespec='seconds')}.",
    )


def _existing(env: Environment, store: Store, client_id: str) -> ClientRecord:
    from ..server.store import UnknownClient

    try:
        return store.get_client(client_id)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None


@clients_app.command("set-keys")
def set_keys(
    ctx: typer.Context,
    client_id: str,
    jwks: JwksOption = None,
    jwks_uri: JwksUriOption = None,
    cert: CertOption = None,
    tls_subject_dn: TlsSubjectDnOption = None,
    tls_san_dns: TlsSanDnsOption = None,
    tls_san_uri: TlsSanUriOption = None,
    tls_san_ip: TlsSanIpOption = None,
    tls_san_email: TlsSanEmailOption = None,
    output: FormatOption = "text",
    db: DbOption = None,
) -> None:
    """Replace what a client without a secret is known by.

    private_key_jwt: its public keys (--jwks) or --jwks-uri. self_signed_tls_client_auth:
    its certificates (--cert, repeatable). tls_client_auth: its certificate subject (one
    --tls-* option). To rotate without a gap, give the old and the new key or
    certificate; drop the old one once the client uses the new.
    """
    env: Environment = ctx.obj
    _check_format(env, output)
    from ..server.store import UnknownClient

    subjects = _subjects(tls_subject_dn, tls_san_dns, tls_san_uri, tls_san_ip, tls_san_email)
    settings, store = open_store(env, db)
    try:
        client = _existing(env, store, client_id)
        method = AuthMethod.parse(client.auth_method)
        if method.needs_secret:
            raise fail(env, f"{client_id!r} is a {client.auth_method} client: it has no keys", 2)
        if method is AuthMethod.TLS_CLIENT_AUTH:
            if jwks is not None or jwks_uri is not None or cert:
                raise fail(env, "a tls_client_auth client is known by one --tls-* option", 2)
            subject = _tls_subject(env, method, subjects)
            assert subject is not None
            store.set_tls_subject(client_id, subject)
            _print_certificate_client(env, output, client_id, method, subject, None)
            return
        _tls_subject(env, method, subjects)  # refuses --tls-* for the other methods
        key_set = _key_options(env, method, jwks, jwks_uri)
        if method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH:
            key_set = _self_signed_certificates(env, cert or [], key_set)
        elif cert:
            raise fail(env, "--cert goes with self_signed_tls_client_auth clients", 2)
        if jwks_uri is not None:
            _check_jwks_uri(env, settings, jwks_uri)
        store.set_client_keys(client_id, jwks=key_set[0] if key_set else None, jwks_uri=jwks_uri)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    if method is AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH:
        _print_certificate_client(env, output, client_id, method, None, key_set)
        return
    _print_keys(env, output, client_id, key_set[1] if key_set else None, jwks_uri)


def _set_enabled(ctx: typer.Context, client_id: str, db: str | None, enabled: bool) -> None:
    env: Environment = ctx.obj
    from ..server.store import UnknownClient

    _, store = open_store(env, db)
    try:
        store.set_enabled(client_id, enabled)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    env.stdout.write(f"{client_id} {'enabled' if enabled else 'disabled'}\n")


@clients_app.command("disable")
def disable(ctx: typer.Context, client_id: str, db: DbOption = None) -> None:
    """Refuse the client new tokens; its current tokens introspect inactive."""
    _set_enabled(ctx, client_id, db, False)


@clients_app.command("enable")
def enable(ctx: typer.Context, client_id: str, db: DbOption = None) -> None:
    """Undo ``disable``."""
    _set_enabled(ctx, client_id, db, True)


@clients_app.command("delete")
def delete(ctx: typer.Context, client_id: str, db: DbOption = None) -> None:
    """Delete the client and its secrets."""
    env: Environment = ctx.obj
    from ..server.store import UnknownClient

    _, store = open_store(env, db)
    try:
        store.delete_client(client_id)
    except UnknownClient:
        raise fail(env, f"no client {client_id!r}") from None
    finally:
        store.close()
    env.stdout.write(f"{client_id} deleted\n")


def register(app: typer.Typer) -> None:
    """Add ``clients`` to the ``authkestra`` app."""
    app.add_typer(clients_app, name="clients")
