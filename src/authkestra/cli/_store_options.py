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


def server_settings(env: Environment, **flags: Any) -> ServerSettings:
    """Server settings from the environment, flags overriding (None means "not given")."""
    try:
        from pydantic import ValidationError

        from ..server.settings import ServerSettings
    except ImportError:
        raise fail(env, "the server needs its extras: pip install 'authkestra[server]'") from None

    try:
        with warnings.catch_warnings(record=True) as deprecated:
            warnings.simplefilter("always", FutureWarning)
            settings = ServerSettings.from_environment(env.environ, **flags)
        for warning in deprecated:
            env.stderr.write(f"authkestra: warning: {warning.message}\n")
        settings.hmac_key_from_settings()  # a missing or short key file: said now, not mid-command
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        raise fail(env, f"invalid server settings: {name}: {first['msg']}") from None
    except (ValueError, OSError) as exc:
        raise fail(env, f"invalid server settings: {exc}".splitlines()[0]) from None
    return settings


def open_store(
    env: Environment, db: str | None, master_key_file: Path | None = None
) -> tuple[ServerSettings, Store]:
    """The existing store named by ``--db`` (or AUTHKESTRA_SERVER_DB, or the default), its
    schema current and its secrets sealed; which store it is, said on stderr.

    A management command never makes a store: one that does not exist is one line.
    """
    from ..server.context import open_store as open_server_store
    from ..server.master_key import MasterKeyError
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
    except MasterKeyError as exc:
        raise fail(env, str(exc)) from None
    except ImportError as exc:
        raise fail(
            env, f"a database driver is missing ({exc.name}): pip install 'authkestra[postgres]'"
        ) from None
    except Exception as exc:
        raise fail(env, f"cannot open the store {shown!r}: {type(exc).__name__}") from None
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
