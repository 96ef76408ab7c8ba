"""What ``serve``, ``clients`` and ``keys`` share: the ``--db`` option and opening the store."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .exit_codes import ExitCode

if TYPE_CHECKING:
    from ..server.settings import ServerSettings
    from ..server.store import Store
    from . import Environment

__all__ = ["DbOption", "fail", "open_store", "print_json", "safe_url", "server_settings"]

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="Store URL: sqlite:///PATH (default sqlite:///authkestra.db) or"
        " postgresql://... [env: AUTHKESTRA_SERVER_DB]",
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


def open_store(env: Environment, db: str | None) -> tuple[ServerSettings, Store]:
    """The migrated store named by ``--db`` (or AUTHKESTRA_SERVER_DB, or the default)."""
    from ..server.store import Store

    settings = server_settings(env, db=db)
    try:
        store = Store(settings.db)
        store.migrate()
    except ImportError as exc:
        raise fail(
            env, f"a database driver is missing ({exc.name}): pip install 'authkestra[postgres]'"
        ) from None
    except Exception as exc:
        raise fail(
            env, f"cannot open the store {safe_url(settings.db)!r}: {type(exc).__name__}"
        ) from None
    return settings, store


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
