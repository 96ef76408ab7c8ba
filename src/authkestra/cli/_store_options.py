"""What ``serve``, ``clients`` and ``keys`` share: the ``--db`` option and opening the store."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .exit_codes import ExitCode

if TYPE_CHECKING:
    from ..server.settings import ServerSettings
    from ..server.store import Store
    from . import Environment

__all__ = [
    "DbOption",
    "MasterKeyOption",
    "fail",
    "open_store",
    "print_json",
    "safe_url",
    "said_master_key",
    "server_settings",
    "setting_name",
    "store_failure",
]

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        help="Act through this server's admin API instead of a store, as the client of the"
        " AUTHKESTRA_CLIENT_* environment (it needs the scope authkestra:admin).",
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Store URL: sqlite:///PATH (default sqlite:///authkestra.db) or"
        " postgresql://... [env: AUTHKESTRA_SERVER_DB]",
    ),
]


MasterKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--master-key-file",
        metavar="FILE",
        help="The master key the store's secrets are sealed under [default: for an SQLite"
        " store, <store>.master-key beside it] [env: AUTHKESTRA_SERVER_MASTER_KEY_FILE]",
    ),
]


def fail(env: Environment, message: str, code: int = ExitCode.CONFIG) -> typer.Exit:
    """Print ``authkestra: error: message`` and return the Exit to raise."""
    env.stderr.write(f"authkestra: error: {message}\n")
    env.stderr.flush()
    return typer.Exit(code)


#: The settings ``serve`` (or every server command) takes as flags: named so in messages.
FLAGS = frozenset(
    {
        "host",
        "port",
        "issuer",
        "db",
        "redis",
        "signing_alg",
        "tls_cert",
        "tls_key",
        "tls_client_ca",
        "log_level",
        "log_format",
        "master_key_file",
        "trusted_proxies",
        "admin_port",
        "admin_host",
        "registration",
        "tracing",
        "workers",
    }
)


def setting_name(name: str) -> str:
    """How a message names a setting: its flag, if it has one, and its variable."""
    from ..server.settings import ENV_PREFIX

    variable = f"{ENV_PREFIX}{name.upper()}"
    return f"--{name.replace('_', '-')} ({variable})" if name in FLAGS else variable


def server_settings(env: Environment, **flags: Any) -> ServerSettings:
    """Server settings from the environment, flags overriding (None means "not given").

    A password in a ``--db`` or ``--redis`` URL is refused: the command line is
    every local user's to read (``ps``); the environment and files are not.
    """
    try:
        from pydantic import ValidationError

        from ..server.settings import ServerSettings
    except ImportError:
        raise fail(env, "the server needs its extras: pip install 'authkestra[server]'") from None

    for name in ("db", "redis"):
        if _has_password(flags.get(name)):
            upper = name.upper()
            raise fail(
                env,
                f"the --{name} URL holds a password, which any local user can read on the"
                f" command line: set AUTHKESTRA_SERVER_{upper} instead, or put the URL in a"
                f" file only you can read and set AUTHKESTRA_SERVER_{upper}_FILE",
                ExitCode.USAGE,
            )
    try:
        with warnings.catch_warnings(record=True) as deprecated:
            warnings.simplefilter("always", FutureWarning)
            settings = ServerSettings.from_environment(env.environ, **flags)
        for warning in deprecated:
            env.stderr.write(f"authkestra: warning: {warning.message}\n")
        settings.hmac_key_from_settings()  # a missing or short key file: said now, not mid-command
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["loc"]:
            raise fail(env, f"{setting_name(str(first['loc'][0]))}: {message}") from None
        raise fail(env, message) from None
    except (ValueError, OSError) as exc:  # the HMAC key file: missing, loose or short
        message = f"{setting_name('secret_key_file')}: {exc}".splitlines()[0]
        raise fail(env, message) from None
    return settings


def _has_password(url: object) -> bool:
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        return False
    try:
        return bool(urlsplit(url).password)
    except ValueError:
        return False


def store_failure(exc: BaseException, settings: ServerSettings) -> tuple[str, int]:
    """Why the store could not be opened, in one line naming ``--db`` and what to do; the
    exit code (CONFIG for the setting, NETWORK for a database that does not answer)."""
    from ..server.master_key import MasterKeyError

    shown = safe_url(settings.db)
    if isinstance(exc, MasterKeyError):
        return str(exc), ExitCode.CONFIG
    if isinstance(exc, ImportError):
        return (
            f"--db {shown}: the PostgreSQL driver ({exc.name or 'psycopg'}) is not installed:"
            " pip install 'authkestra[postgres]'",
            ExitCode.CONFIG,
        )
    if isinstance(exc, OSError):
        return (
            f"--db {shown}: cannot make the store there ({exc.strerror or exc}): give a"
            " directory this user may write",
            ExitCode.CONFIG,
        )
    from sqlalchemy.exc import DatabaseError, OperationalError

    reason = str(getattr(exc, "orig", exc) or type(exc).__name__).strip().splitlines()
    first = reason[0] if reason else type(exc).__name__
    if settings.db.startswith("sqlite"):
        return (
            f"--db {shown}: cannot open the SQLite store ({first}): is it an authkestra store,"
            " in a directory this user may write?",
            ExitCode.CONFIG,
        )
    if isinstance(exc, OperationalError):
        return (
            f"--db {shown}: cannot reach PostgreSQL ({first}): check that it runs and that"
            " the URL's host, port, user and database are right",
            ExitCode.NETWORK,
        )
    if isinstance(exc, DatabaseError):
        return f"--db {shown}: the database refused ({first})", ExitCode.CONFIG
    return f"--db {shown}: cannot open the store ({type(exc).__name__})", ExitCode.CONFIG


def open_store(
    env: Environment, db: str | None, master_key_file: Path | None = None
) -> tuple[ServerSettings, Store]:
    """The existing store named by ``--db`` (or AUTHKESTRA_SERVER_DB, or the default), its
    schema current and its secrets sealed; which store it is, said on stderr.

    A management command never makes a store: one that does not exist is one line.
    """
    from ..server.context import open_store as open_server_store
    from ..server.store import StoreMissing

    settings = server_settings(env, db=db, master_key_file=master_key_file)
    shown = safe_url(settings.db)
    try:
        store = open_server_store(settings, create=False)
    except StoreMissing:
        raise fail(
            env,
            f"no store at {shown}: make it with 'authkestra init' (or start 'authkestra"
            " serve'), or give --db (or AUTHKESTRA_SERVER_DB) to use another",
        ) from None
    except Exception as exc:
        raise fail(env, *store_failure(exc, settings)) from None
    env.stderr.write(f"authkestra: store {shown}\n")
    said_master_key(env, store)
    return settings, store


def said_master_key(env: Environment, store: Store) -> None:
    """Say where a master key was just made for ``store``, if one was."""
    made = store.sealer.generated
    if made is not None:
        env.stderr.write(
            f"authkestra: made the store's master key at {made}: keep it, apart from the"
            " store's backups (without it the store's signing keys cannot be opened)\n"
        )


def print_json(env: Environment, document: object) -> None:
    env.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    env.stdout.flush()


def safe_url(url: str) -> str:
    """``url`` with its password, if any, masked: a database URL is printed, never its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
