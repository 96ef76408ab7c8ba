"""``authkestra serve``: run the authorization server."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._store_options import (
    DbOption,
    MasterKeyOption,
    fail,
    safe_url,
    server_settings,
    store_failure,
)
from .exit_codes import ExitCode

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
        str | None,
        typer.Option(
            "--workers",
            metavar="auto|N",
            help="Worker processes sharing the port [default: auto, one per core].",
        ),
    ] = None,
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
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="critical, error, warning, info, debug or trace [default: info].",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="text or json (one object per line) [default: text]."),
    ] = None,
    master_key_file: MasterKeyOption = None,
    admin_port: Annotated[
        int | None,
        typer.Option(
            "--admin-port",
            min=1,
            max=65535,
            help="Serve the admin API (clients, keys, /metrics) on this port [default: none].",
        ),
    ] = None,
    admin_host: Annotated[
        str | None,
        typer.Option("--admin-host", help="Address of the admin API [default: 127.0.0.1]."),
    ] = None,
    registration: Annotated[
        bool | None,
        typer.Option(
            "--registration/--no-registration",
            help="Dynamic client registration (RFC 7591) for holders of an initial access"
            " token [default: off].",
        ),
    ] = None,
    tracing: Annotated[
        bool | None,
        typer.Option(
            "--tracing/--no-tracing",
            help="OpenTelemetry traces (the otel extra), exported as OTEL_* says [default: off].",
        ),
    ] = None,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            "--trusted-proxies",
            metavar="ADDRESSES",
            help="Proxies (addresses or networks, comma-separated) whose X-Forwarded-For"
            " names the client [default: none].",
        ),
    ] = None,
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
        log_level=log_level,
        log_format=log_format,
        trusted_proxies=trusted_proxies,
        admin_port=admin_port,
        admin_host=admin_host,
        registration=registration,
        tracing=tracing,
        workers=workers,
    )
    workers_count = settings.worker_count()
    if settings.tls_cert is None and (settings.tls_key or settings.tls_client_ca):
        raise fail(env, "--tls-key and --tls-client-ca go with --tls-cert", 2)
    master_key_made = _prepare_store(env, settings)
    _check_redis(env, settings)
    _check_address(env, settings.host, settings.port, "--host/--port")
    if settings.admin_port is not None:
        if (settings.admin_host, settings.admin_port) == (settings.host, settings.port):
            raise fail(env, "--admin-port: give the admin API a port of its own", 2)
        _check_address(env, settings.admin_host, settings.admin_port, "--admin-host/--admin-port")
    if settings.tracing:
        _check_tracing(env)
    # Several workers are several processes: their metrics go to files that the admin
    # listener (in this process) adds up. Set before prometheus_client is first imported.
    metrics_dir = _shared_metrics_dir() if workers_count > 1 else None
    try:
        _run(env, settings, workers_count, master_key_made)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(
    env: Environment, settings: ServerSettings, workers: int, master_key_made: Path | None
) -> None:
    import logging.config

    import uvicorn

    from ..server.app import create_app
    from ..server.logs import logging_config, skip_what_no_line_shows

    # Everything checked: from here on every line is a log line, in --log-format.
    log_config = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(log_config)
    skip_what_no_line_shows()
    log = logging.getLogger("authkestra.server")
    if master_key_made is not None:
        log.warning(
            "made the store's master key: keep it, apart from the store's backups",
            extra={"fields": {"path": str(master_key_made)}},
        )
    try:
        app = create_app(settings)
    except ImportError as exc:
        extra = "otel" if (exc.name or "").startswith("opentelemetry") else "server"
        raise fail(
            env, f"missing dependency {exc.name}: pip install 'authkestra[{extra}]'"
        ) from None
    except ValueError as exc:  # the tracing exporter the OTEL_* environment names
        raise fail(env, f"--tracing: {exc}", 2) from None
    log.info(
        "starting",
        extra={
            "fields": {
                "issuer": settings.effective_issuer(),
                "store": safe_url(settings.db),
                "redis": safe_url(settings.redis) if settings.redis else None,
                "workers": workers,
                "admin": f"http://{settings.admin_host}:{settings.admin_port}"
                if settings.admin_port is not None
                else None,
                "registration": settings.registration,
            }
        },
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": log_config,
        "server_header": False,
        "access_log": False,
        # The client's address is the connection's, unless it comes through a proxy the
        # operator listed (uvicorn's default would believe X-Forwarded-For from loopback).
        "proxy_headers": bool(settings.proxies()),
        "forwarded_allow_ips": settings.proxies() or None,
    }
    if settings.tls_cert is not None:
        options.update(_tls_options(env, settings))
    admin = None
    if settings.admin_port is not None:
        from ..server.admin.listener import AdminListener

        admin = AdminListener(settings, log_config=None)  # logging is set up above
        admin.start()
    try:
        if workers == 1:
            uvicorn.run(app, **options)
            return
        # Worker processes build their own app from the environment; the store was made,
        # migrated and sealed above, so they do not race to do it.
        # Each learns how many they are (a per-address failure limit without Redis is
        # shared out among them).
        os.environ.update(settings.to_environment(migrate=False, workers=workers))
        uvicorn.run(
            "authkestra.server.app:create_app_from_environment",
            factory=True,
            workers=workers,
            **options,
        )
    finally:
        if admin is not None:
            admin.stop()


def _shared_metrics_dir() -> str | None:
    """A private directory for the workers' metrics (None: the operator set one)."""
    from ..server.metrics import MULTIPROCESS_DIR

    if os.environ.get(MULTIPROCESS_DIR):
        return None
    directory = tempfile.mkdtemp(prefix="authkestra-metrics-")
    os.environ[MULTIPROCESS_DIR] = directory
    return directory


def _check_tracing(env: Environment) -> None:
    try:
        import opentelemetry.instrumentation.asgi
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise fail(
            env, "--tracing needs OpenTelemetry: pip install 'authkestra[otel]'", 2
        ) from None


def _prepare_store(env: Environment, settings: ServerSettings) -> Path | None:
    """Make (or open) the store, its schema current and its secrets sealed, before serving:
    a store that cannot be had is one line here, not a traceback in a worker. Where a
    master key was made for it, if one was (logged once logging is set up)."""
    from ..server.context import open_store

    try:
        store = open_store(settings)
    except Exception as exc:
        raise fail(env, *store_failure(exc, settings)) from None
    store.close()
    return store.sealer.generated


def _check_redis(env: Environment, settings: ServerSettings) -> None:
    """Redis answers, or one line saying it does not (every instance needs it from the start)."""
    if not settings.redis:
        return
    shown = safe_url(settings.redis)
    try:
        import redis as redis_py
    except ImportError:
        raise fail(
            env,
            f"--redis {shown}: the redis package is not installed: pip install 'authkestra[redis]'",
        ) from None
    try:
        client = redis_py.Redis.from_url(settings.redis, socket_connect_timeout=2, socket_timeout=2)
    except ValueError as exc:
        raise fail(env, f"--redis {shown}: not a Redis URL ({exc})") from None
    try:
        client.ping()
    except redis_py.RedisError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(
            env,
            f"--redis {shown}: Redis does not answer ({reason}): check that it runs and the URL",
            ExitCode.NETWORK,
        ) from None
    finally:
        client.close()


def _check_address(env: Environment, host: str, port: int, flags: str) -> None:
    """``host:port`` is free to listen on, or one line naming ``flags`` and saying why not
    (uvicorn would log a traceback-less error and exit 1, after the store was opened)."""
    import errno
    import socket

    host_flag, port_flag = flags.split("/")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        probe.bind((host, port))
    except OSError as exc:
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            reason = f"{where} is in use (another server?): give another {port_flag}"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            reason = f"this user may not listen on {where}: give a {port_flag} above 1023"
        elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            reason = f"{host} is not an address of this machine: give another {host_flag}"
        else:
            reason = f"cannot listen on {where} ({exc.strerror or exc})"
        raise fail(env, f"{flags}: {reason}") from None
    finally:
        probe.close()


def _tls_options(env: Environment, settings: ServerSettings) -> dict[str, Any]:
    """uvicorn's TLS options: client certificates asked for, and handed to the app."""
    import ssl

    from ..server.mtls import ClientCAs
    from ..server.tls_server import ServerSSLContext
    from ..tls.uvicorn import TLSExtensionHTTPProtocol

    assert settings.tls_cert is not None
    _warn_if_others_may_read(settings.tls_key or settings.tls_cert, "TLS private key")
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


def _warn_if_others_may_read(path: Path, what: str) -> None:
    """A warning, not a refusal: a TLS key is often shared with a group (Debian's ssl-cert)."""
    from ..server.private_files import loose_mode

    try:
        loose = loose_mode(path)
    except OSError:
        return  # missing: said when it is loaded
    if loose is not None:
        logging.getLogger("authkestra.server").warning(
            "the %s file may be read by others: chmod 600 it, unless a group must read it",
            what,
            extra={"fields": {"path": str(path), "mode": f"{loose:04o}"}},
        )


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``authkestra`` app."""
    app.command("serve")(serve)
