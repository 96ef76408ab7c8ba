"""``authkestra clients``: register and manage the clients of the authorization server."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .._protocol.client_auth import AuthMethod
from .._protocol.token_exchange import TOKEN_EXCHANGE
from ._management import Management, management
from ._render import (
    ListFormatOption,
    check_format,
    check_text_or_json,
    print_record,
    print_records,
)
from ._store_options import DbOption, MasterKeyOption, ServerOption, fail, print_json

if TYPE_CHECKING:
    from ..server.registration import IssuedClient
    from ..server.store import ClientRecord
    from . import Environment

__all__ = ["register"]

clients_app = typer.Typer(
    help="Register and manage clients (services that get tokens).", no_args_is_help=True
)

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


CanIntrospectOption = Annotated[
    str | None,
    typer.Option(
        "--can-introspect",
        metavar="audience|any|none",
        help="May introspect tokens (RFC 7662): 'audience', those meant for one of its"
        " audiences (an API); 'any', every token (a gateway); 'none' [default: none].",
    ),
]


def _introspection(value: str | None) -> str | None:
    """The --can-introspect value as the registration rules take it ('none': None)."""
    return None if value in (None, "none") else value


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
        "can_introspect": client.introspection,
        "can_exchange": TOKEN_EXCHANGE in client.grant_types,
        "created_at": client.created_at.isoformat(timespec="seconds"),
    }


#: How the registration rules' fields are spelled on this command line.
_OPTIONS = {
    "auth_method": "--auth-method",
    "scopes": "--scope",
    "default_scopes": "--default-scope",
    "audiences": "--audience",
    "token_ttl": "--token-ttl",
    "jwks": "--jwks",
    "jwks_uri": "--jwks-uri",
    "certificates": "--cert",
    "tls_subject": "--tls-*",
    "set_keys": "'clients set-keys'",
    "introspection": "--can-introspect",
    "enabled": "--enable/--disable",
    "trusted_issuer": "--trusted-issuer",
    "grant_types": "--can-exchange",
    "subject": "--subject",
}


def _option(field: str) -> str:
    """A registration field as its command-line option (``tls_subject.san_ip``: --tls-san-ip)."""
    if field.startswith("tls_subject."):
        return "--tls-" + field.split(".", 1)[1].replace("_", "-")
    return _OPTIONS.get(field, field)


def _clients(
    env: Environment,
    server: str | None,
    db: str | None,
    master_key_file: Path | None,
    client_id: str | None = None,
) -> contextlib.AbstractContextManager[Management]:
    """The store (``--db``) or the admin API (``--server``), refusals in this CLI's words."""
    return management(
        env,
        server=server,
        db=db,
        master_key_file=master_key_file,
        client_id=client_id,
        field_spelling=_option,
    )


def _read_text(env: Environment, option: str, value: str) -> str:
    """``value`` itself when it is JSON or PEM text, else the text of the file it names."""
    if value.lstrip().startswith(("{", "-----")):
        return value
    try:
        return Path(value).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise fail(env, f"cannot read the {option} file {value!r}: {reason}", 2) from None


def _read_certificates(env: Environment, paths: list[Path] | None) -> list[str]:
    texts = []
    for path in paths or []:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise fail(env, f"--cert: not a readable PEM certificate ({reason})", 2) from None
    return texts


def _print_keys(
    env: Environment, output: str, client_id: str, kids: list[str] | None, jwks_uri: str | None
) -> None:
    method = AuthMethod.PRIVATE_KEY_JWT.value
    document: dict[str, object] = {"client_id": client_id, "auth_method": method}
    if jwks_uri is not None:
        document["jwks_uri"] = jwks_uri
    else:
        document["jwks_kids"] = kids or []
    if output == "json":
        print_json(env, document)
        return
    env.stdout.write(f"client_id:     {client_id}\nauth_method:   {method}\n")
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
        AuthMethod | None,
        typer.Option(
            "--auth-method",
            help="[default: client_secret_basic; private_key_jwt with --trusted-issuer]",
        ),
    ] = None,
    token_ttl: Annotated[
        int | None, typer.Option("--token-ttl", min=1, max=86400, help="Seconds.")
    ] = None,
    trusted_issuer: Annotated[
        str | None,
        typer.Option(
            "--trusted-issuer",
            metavar="NAME",
            help="No secret or key: the tokens of this trusted issuer (authkestra issuers"
            " add) about --subject authenticate it.",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            metavar="SUB",
            help="With --trusted-issuer: the sub of the workload's tokens, e.g."
            " system:serviceaccount:payments:reporter.",
        ),
    ] = None,
    can_exchange: Annotated[
        bool,
        typer.Option(
            "--can-exchange",
            help="Let it exchange tokens it is called with for tokens to call on with"
            " (RFC 8693 token exchange).",
        ),
    ] = False,
    jwks: JwksOption = None,
    jwks_uri: JwksUriOption = None,
    tls_subject_dn: TlsSubjectDnOption = None,
    tls_san_dns: TlsSanDnsOption = None,
    tls_san_uri: TlsSanUriOption = None,
    tls_san_ip: TlsSanIpOption = None,
    tls_san_email: TlsSanEmailOption = None,
    cert: CertOption = None,
    can_introspect: CanIntrospectOption = None,
    output: FormatOption = "text",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Register a client and print its id and a new 256-bit secret (shown only this once).

    A private_key_jwt client gets no secret: it signs assertions with its private key,
    and the server keeps its public keys (--jwks) or where to fetch them (--jwks-uri).
    A tls_client_auth client is known by its certificate's subject (--tls-subject-dn or
    one --tls-san-*), a self_signed_tls_client_auth client by its certificate (--cert).
    A workload's client needs neither: --trusted-issuer NAME --subject SUB binds it to its
    platform's tokens (a Kubernetes service account, a GitHub Actions workflow).
    """
    env: Environment = ctx.obj
    check_text_or_json(env, output)
    from ..server.registration import ClientSpec

    if auth_method is None:
        federated = trusted_issuer is not None
        auth_method = AuthMethod.PRIVATE_KEY_JWT if federated else AuthMethod.CLIENT_SECRET_BASIC
    spec = ClientSpec(
        name,
        auth_method,
        scopes=scope or [],
        default_scopes=default_scope or [],
        audiences=audience or [],
        token_ttl=token_ttl,
        jwks=_read_text(env, "--jwks", jwks) if jwks is not None else None,
        jwks_uri=jwks_uri,
        certificates=_read_certificates(env, cert),
        tls_subjects=_subjects(tls_subject_dn, tls_san_dns, tls_san_uri, tls_san_ip, tls_san_email),
        introspection=_introspection(can_introspect),
        trusted_issuer=trusted_issuer,
        subject=subject,
        grant_types=[TOKEN_EXCHANGE] if can_exchange else [],
    )
    with _clients(env, server, db, master_key_file, name) as backend:
        issued = backend.create(spec)
    _print_issued(env, output, issued)


def _print_issued(env: Environment, output: str, issued: IssuedClient) -> None:
    """What a registration made: the secret (once), or what the client is known by."""
    client = issued.client
    method = AuthMethod(client.auth_method)
    if issued.secret is not None:
        _print_secret(
            env,
            output,
            client.client_id,
            issued.secret,
            "Store the secret now: it is shown only this once.",
        )
    elif method.uses_tls:
        document: dict[str, object] = {"client_id": client.client_id, "auth_method": method.value}
        if issued.tls_subject is not None:
            document["tls_client_auth"] = dict(issued.tls_subject)
        if issued.key_ids:
            document["key_ids"] = list(issued.key_ids)
        _print_document(env, output, document)
    elif client.federated:
        _print_document(env, output, _federation(client))
    else:
        _print_keys(env, output, client.client_id, list(issued.key_ids), client.jwks_uri)


def _federation(client: ClientRecord) -> dict[str, object]:
    return {
        "client_id": client.client_id,
        "auth_method": client.auth_method,
        "trusted_issuer": client.federated_issuer,
        "subject": client.federated_subject,
    }


def _subjects(*values: str | None) -> dict[str, str]:
    """The --tls-* options given, by the subject kind they name (in SUBJECT_KINDS order)."""
    from ..server.mtls import SUBJECT_KINDS

    return {kind: v for kind, v in zip(SUBJECT_KINDS, values, strict=True) if v is not None}


def _print_document(env: Environment, output: str, document: dict[str, object]) -> None:
    """JSON, or one ``name: value`` line per member."""
    if output == "json":
        print_json(env, document)
        return
    for key, value in document.items():
        env.stdout.write(f"{key + ':':16}{value}\n")
    env.stdout.flush()


@clients_app.command("list")
def list_clients(
    ctx: typer.Context,
    output: ListFormatOption = "table",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """List the registered clients."""
    env: Environment = ctx.obj
    check_format(env, output)
    with _clients(env, server, db, master_key_file) as backend:
        clients = backend.list_clients()
    print_records(env, output, [_describe(c) for c in clients], _LIST_COLUMNS)


_LIST_COLUMNS = ("client_id", "auth_method", "enabled", "scopes", "audiences", "can_introspect")


@clients_app.command("show")
def show(
    ctx: typer.Context,
    client_id: str,
    output: ListFormatOption = "table",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Show one client: its method, its key ids or jwks_uri, when each secret expires --
    never a secret."""
    env: Environment = ctx.obj
    check_format(env, output)
    with _clients(env, server, db, master_key_file, client_id) as backend:
        client = backend.get_client(client_id)
    described = _describe(client)
    if client.method.needs_secret:
        described["secrets"] = [
            {
                "expires_at": secret.expires_at.isoformat(timespec="seconds")
                if secret.expires_at
                else "never (the current one)"
            }
            for secret in client.secrets
        ]
    if client.tls_client_auth is not None:
        described["tls_client_auth"] = json.loads(client.tls_client_auth)
    if client.auth_method == AuthMethod.SELF_SIGNED_TLS_CLIENT_AUTH.value:
        from ..server.client_keys import jwks_kids

        described["certificate_kids"] = jwks_kids(client.jwks)
    if client.federated:
        described.update(_federation(client))
    elif client.auth_method == AuthMethod.PRIVATE_KEY_JWT.value:
        from ..server.client_keys import jwks_kids

        if client.jwks_uri:
            described["jwks_uri"] = client.jwks_uri
        else:
            described["jwks_kids"] = jwks_kids(client.jwks)
    print_record(env, output, described)


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
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Issue a new secret; the old one keeps working for the grace period."""
    env: Environment = ctx.obj
    check_text_or_json(env, output)
    with _clients(env, server, db, master_key_file, client_id) as backend:
        issued = backend.rotate_secret(
            client_id, timedelta(seconds=grace) if grace is not None else None
        )
    assert issued.secret is not None and issued.old_secrets_until is not None
    until = issued.old_secrets_until.isoformat(timespec="seconds")
    _print_secret(
        env, output, client_id, issued.secret, f"The old secret keeps working until {until}."
    )


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
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Replace what a client without a secret is known by.

    private_key_jwt: its public keys (--jwks) or --jwks-uri. self_signed_tls_client_auth:
    its certificates (--cert, repeatable). tls_client_auth: its certificate subject (one
    --tls-* option). To rotate without a gap, give the old and the new key or
    certificate; drop the old one once the client uses the new.
    """
    env: Environment = ctx.obj
    check_text_or_json(env, output)
    subjects = _subjects(tls_subject_dn, tls_san_dns, tls_san_uri, tls_san_ip, tls_san_email)
    jwks_text = _read_text(env, "--jwks", jwks) if jwks is not None else None
    certificates = _read_certificates(env, cert)
    with _clients(env, server, db, master_key_file, client_id) as backend:
        issued = backend.set_keys(
            client_id,
            jwks=jwks_text,
            jwks_uri=jwks_uri,
            certificates=certificates,
            tls_subjects=subjects,
        )
    _print_issued(env, output, issued)


@clients_app.command("update")
def update(
    ctx: typer.Context,
    client_id: str,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Its scopes from now on (repeatable; replaces them all)."),
    ] = None,
    default_scope: Annotated[
        list[str] | None,
        typer.Option("--default-scope", help="Its default scopes from now on (repeatable)."),
    ] = None,
    all_scopes_by_default: Annotated[
        bool,
        typer.Option("--all-scopes-by-default", help="Grant all its scopes when it asks none."),
    ] = False,
    audience: Annotated[
        list[str] | None,
        typer.Option("--audience", help="Its audiences from now on (repeatable)."),
    ] = None,
    token_ttl: Annotated[
        int | None,
        typer.Option("--token-ttl", min=1, max=86400, help="Seconds its tokens live."),
    ] = None,
    default_token_ttl: Annotated[
        bool, typer.Option("--default-token-ttl", help="Its tokens live the server's default.")
    ] = False,
    enabled: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Let it get tokens, or refuse it new ones."),
    ] = None,
    can_introspect: CanIntrospectOption = None,
    can_exchange: Annotated[
        bool | None,
        typer.Option("--can-exchange/--cannot-exchange", help="Allow or forbid it token exchange."),
    ] = None,
    jwks: JwksOption = None,
    jwks_uri: JwksUriOption = None,
    cert: CertOption = None,
    tls_subject_dn: TlsSubjectDnOption = None,
    tls_san_dns: TlsSanDnsOption = None,
    tls_san_uri: TlsSanUriOption = None,
    tls_san_ip: TlsSanIpOption = None,
    tls_san_email: TlsSanEmailOption = None,
    output: ListFormatOption = "table",
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Change a client's scopes, audiences, token lifetime, enabled state, right to
    introspect or keys -- never its secret (that is rotate-secret). Prints the client."""
    env: Environment = ctx.obj
    check_format(env, output)
    from ..server.registration import KEEP, ClientChanges

    if default_scope and all_scopes_by_default:
        raise fail(env, "--default-scope and --all-scopes-by-default: give one", 2)
    if token_ttl is not None and default_token_ttl:
        raise fail(env, "--token-ttl and --default-token-ttl: give one", 2)
    defaults = default_scope if default_scope else ([] if all_scopes_by_default else KEEP)
    changes = ClientChanges(
        scopes=scope if scope else KEEP,
        default_scopes=defaults,
        audiences=audience if audience else KEEP,
        token_ttl=token_ttl if token_ttl is not None else (None if default_token_ttl else KEEP),
        enabled=enabled if enabled is not None else KEEP,
        introspection=_introspection(can_introspect) if can_introspect is not None else KEEP,
        grant_types=KEEP if can_exchange is None else ([TOKEN_EXCHANGE] if can_exchange else []),
    )
    subjects = _subjects(tls_subject_dn, tls_san_dns, tls_san_uri, tls_san_ip, tls_san_email)
    new_keys = jwks is not None or jwks_uri is not None or bool(cert) or bool(subjects)
    if not changes.given() and not new_keys:
        raise fail(env, "nothing to change: give what to change (see --help)", 2)
    jwks_text = _read_text(env, "--jwks", jwks) if jwks is not None else None
    certificates = _read_certificates(env, cert)
    keys = {
        "jwks": jwks_text,
        "jwks_uri": jwks_uri,
        "certificates": certificates,
        "tls_subjects": subjects,
    }
    with _clients(env, server, db, master_key_file, client_id) as backend:
        client = backend.update(client_id, changes, keys=keys if new_keys else None)
    print_record(env, output, _describe(client))


def _set_enabled(
    ctx: typer.Context,
    client_id: str,
    db: str | None,
    master_key_file: Path | None,
    server: str | None,
    enabled: bool,
) -> None:
    env: Environment = ctx.obj
    from ..server.registration import ClientChanges

    with _clients(env, server, db, master_key_file, client_id) as backend:
        backend.update(client_id, ClientChanges(enabled=enabled))
    env.stdout.write(f"{client_id} {'enabled' if enabled else 'disabled'}\n")


@clients_app.command("disable")
def disable(
    ctx: typer.Context,
    client_id: str,
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Refuse the client new tokens; its current tokens introspect inactive."""
    _set_enabled(ctx, client_id, db, master_key_file, server, False)


@clients_app.command("enable")
def enable(
    ctx: typer.Context,
    client_id: str,
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Undo ``disable``."""
    _set_enabled(ctx, client_id, db, master_key_file, server, True)


@clients_app.command("delete")
def delete(
    ctx: typer.Context,
    client_id: str,
    db: DbOption = None,
    master_key_file: MasterKeyOption = None,
    server: ServerOption = None,
) -> None:
    """Delete the client and its secrets."""
    env: Environment = ctx.obj
    with _clients(env, server, db, master_key_file, client_id) as backend:
        backend.delete(client_id)
    env.stdout.write(f"{client_id} deleted\n")


def register(app: typer.Typer) -> None:
    """Add ``clients`` to the ``authkestra`` app."""
    app.add_typer(clients_app, name="clients")
