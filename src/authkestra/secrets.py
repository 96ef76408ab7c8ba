"""Client secrets: a masked value, and the sources a secret can be read from.

A flow takes its ``client_secret`` as any of:

- a ``str`` or a :class:`Secret` -- a fixed value;
- :class:`EnvSecret` -- read from an environment variable each time it is needed;
- :class:`FileSecret` -- read from a file each time (a mounted Kubernetes or
  Docker secret, which the platform rewrites on rotation);
- a callable, sync or async, returning ``str`` or :class:`Secret` -- a secrets
  manager (Vault, AWS Secrets Manager, ...).

Every source but a fixed value is *rotating*: when the authorization server
answers ``invalid_client``, the flow reads the source again and, if the value
changed, retries once, so a rotated secret is picked up without a restart.
"""

from __future__ import annotations

import hmac
import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from .errors import ConfigError

__all__ = ["EnvSecret", "FileSecret", "Secret", "SecretLike", "SecretSource", "to_secret_source"]


class Secret:
    """A secret string that does not show itself.

    ``repr()``/``str()`` print ``Secret('**********')``; the value is read with
    :meth:`get_secret_value`. Equality is constant-time.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise ConfigError("a Secret holds a str")
        self._value = value

    def get_secret_value(self) -> str:
        """Return the secret itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        # Hashing would make the value recoverable by brute force from a hash table dump.
        raise TypeError("Secret is not hashable")

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Secret cannot be pickled")


SecretValue = str | Secret
SecretCallable = Callable[[], SecretValue | Awaitable[SecretValue]]


class SecretSource:
    """Where a flow reads its client secret from.

    Subclass and implement :meth:`read` (which may return an awaitable) to plug
    in any store. ``rotating`` tells the flow whether reading again after an
    ``invalid_client`` answer can give a new value.
    """

    rotating: bool = True
    #: What the source holds, as error messages name it.
    what: str = "client secret"

    def read(self) -> SecretValue | Awaitable[SecretValue]:
        """Return the current secret, or an awaitable of it."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class StaticSecret(SecretSource):
    """A fixed secret given in code."""

    rotating = False

    def __init__(self, value: SecretValue) -> None:
        self._secret = value if isinstance(value, Secret) else Secret(value)

    def read(self) -> Secret:
        return self._secret

    def __repr__(self) -> str:
        return "StaticSecret(Secret('**********'))"


class EnvSecret(SecretSource):
    """A secret read from the environment variable ``name`` each time it is needed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self) -> Secret:
        value = os.environ.get(self.name)
        if not value:
            raise ConfigError(f"the environment variable {self.name} is not set or empty")
        return Secret(value)

    def __repr__(self) -> str:
        return f"EnvSecret({self.name!r})"


class FileSecret(SecretSource):
    """A secret read from a file each time it is needed.

    One trailing line break is removed (``echo secret > file`` adds one); any
    other whitespace is part of the secret.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    #: The error a file that cannot be read raises.
    error: type[ConfigError] = ConfigError

    def read(self) -> Secret:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise self.error(
                f"cannot read the {self.what} file {str(self.path)!r}: {exc.strerror}"
            ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"the {self.what} file {str(self.path)!r} is not UTF-8 text") from None
        if text.endswith("\r\n"):
            text = text[:-2]
        elif text.endswith("\n"):
            text = text[:-1]
        if not text:
            raise self.error(f"the {self.what} file {str(self.path)!r} is empty")
        return Secret(text)

    def __repr__(self) -> str:
        return f"FileSecret({str(self.path)!r})"


class CallableSecret(SecretSource):
    """A secret returned by a function, sync or async (a secrets manager)."""

    def __init__(self, func: SecretCallable) -> None:
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )

    def read(self) -> SecretValue | Awaitable[SecretValue]:
        return self.func()

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", type(self.func).__name__)
        return f"CallableSecret({name})"


SecretLike = str | Secret | SecretSource | SecretCallable


def to_secret_source(value: SecretLike | None) -> SecretSource | None:
    """Turn any accepted ``client_secret`` argument into a :class:`SecretSource`."""
    if value is None:
        return None
    if isinstance(value, SecretSource):
        return value
    if isinstance(value, (str, Secret)):
        return StaticSecret(value)
    if callable(value):
        return CallableSecret(value)
    raise ConfigError(
        "client_secret must be a str, an authkestra.Secret, a SecretSource, or a callable"
        f" returning one (got {type(value).__name__})"
    )


def secret_text(value: object, source: SecretSource | None = None) -> str:
    """The text of a value ``source`` returned, checked."""
    what = source.what if source is not None else SecretSource.what
    error = getattr(source, "error", ConfigError)
    if isinstance(value, Secret):
        value = value.get_secret_value()
    if not isinstance(value, str):
        raise error(f"the {what} source returned {type(value).__name__}, expected str or Secret")
    if not value:
        raise error(f"the {what} source returned an empty {what}")
    return value
