"""``authkestra serve``: run the authorization server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._store_options import (
    DbOption,
    MasterKeyOption,
    fail,
    safe_url,
    said_master_key,
    server_settings,
)

if TYPE_CHECKING:
    from ..server.settings import ServerSettings
    from . import Environment

__all__ = ["register"]


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="[default: 8080]")
    ] = None,
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="Public issuer URL [default: http://HOST:PORT].")
    ] = None,
    db: DbOption = None,
    redis: Annotated[
        str | None,
        typer.Option("--redis", metavar="URL", help="Redis for state shared by instances."),
    ] = None,
    signing_alg: Annotated[
        str | None, typer.Option("--signing-alg", help="ES256, EdDSA or RS256.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=64, help="Worker processes sharing the port."),
    ] = 1,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", metavar="PEM", help="Serve HTTPS with this certificate."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", metavar="PEM", help="Its private key.")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-client-ca",
            metavar="PEM",
            help="CAs of client certificates (tls_client_auth, certificate-bound tokens).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    master_key_file: MasterKeyOption = None,
) -> None:
    """Run the authorization server (token, metadata, JWKS, introspection, revocation).

    Every setting can also come from AUTHKESTRA_SERVER_<NAME> variables
    (AUTHKESTRA_SERVER_DB, AUTHKESTRA_SERVER_REDIS, AUTHKESTRA_SERVER_ISSUER,
    AUTHKESTRA_SERVER_SECRET_KEY_FILE, ...). No client variable (AUTHKESTRA_ISSUER,
    AUTHKESTRA_SIGNING_ALG, ...) changes how the server starts.
    """
    env: Environment = ctx.obj
    settings = server_settings(
        env,
        host=host,
        port=port,
        issuer=issuer,
        db=db,
        redis=redis,
        signing_alg=signing_alg,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        master_key_file=master_key_file,
    )
    if settings.tls_cert is None and (settings.tls_key or settings.tls_client_ca):
        raise fail(env, "--tls-key and --tls-client-ca go with --tls-cert", 2)
    _prepare_store(env, settings)
    import uvicorn

    from ..server.app import create_app

    try:
        app = create_app(settings)
    except ImportError as exc:
        raise fail(
            env, f"missing dependency {exc.name}: pip install 'authkestra[server]'"
        ) from None
    env.stderr.write(
        f"authkestra: issuer {settings.effective_issuer()}, store {safe_url(settings.db)}\n"
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "server_header": False,
        "access_log": False,
    }
    if settings.tls_cert is not None:
        options.update(_tls_options(env, settings))
    if workers == 1:
        uvicorn.run(app, **options)
        return
    # Worker processes build their own app from the environment; the store was made,
    # migrated and sealed above, so they do not race to do it.
    os.environ.update(settings.to_environment(migrate=False))
    uvicorn.run(
        "authkestra.server.app:create_app_from_environment",
        factory=True,
        workers=workers,
        **options,
    )


def _prepare_store(env: Environment, settings: ServerSettings) -> None:
    """Make (or open) the store, its schema current and its secrets sealed, before serving:
    a store that cannot be had is one line here, not a traceback in a worker."""
    from ..server.context import open_store
    from ..server.master_key import MasterKeyError

    try:
        store = open_store(settings)
    except MasterKeyError as exc:
        raise fail(env, str(exc)) from None
    except ImportError as exc:
        raise fail(
            env, f"a database driver is missing ({exc.name}): pip install 'authkestra[postgres]'"
        ) from None
    except Exception as exc:
        raise fail(
            env, f"cannot open the store {safe_url(settings.db)!r}: {type(exc).__name__}"
        ) from None
    said_master_key(env, store)
    store.close()


def _tls_options(env: Environment, settings: ServerSettings) -> dict[str, Any]:
    """uvicorn's TLS options: client certificates asked for, and handed to the app."""
    import ssl

    from ..server.mtls import ClientCAs
    from ..server.tls_server import ServerSSLContext
    from ..tls.uvicorn import TLSExtensionHTTPProtocol

    assert settings.tls_cert is not None
    factory = ServerSSLContext(
        str(settings.tls_cert),
        str(settings.tls_key) if settings.tls_key else None,
        str(settings.tls_client_ca) if settings.tls_client_ca else None,
        settings.db,
    )
    try:  # load everything once now: a wrong file is a clear error, not a failed worker
        factory.build(())
        if settings.tls_client_ca:
            ClientCAs.from_file(settings.tls_client_ca)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise fail(
            env, f"TLS: cannot load the certificate, key or client CAs ({reason})", 2
        ) from None
    return {
        "ssl_certfile": str(settings.tls_cert),
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        "ssl_context_factory": factory,
        "http": TLSExtensionHTTPProtocol,
    }


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``authkestra`` app."""
    app.command("serve")(serve)
