"""The master key: what the store's secrets are sealed under at rest.

The signing keys' private parts and the HMAC key that protects client secrets
never reach the store in plaintext: each is sealed with AES-256-GCM under the
operator's master key (a key-encryption key), with what it is (``signing-key:<kid>``,
``state:<name>``) as associated data, so a sealed value moved to another row does
not open. A copy of the store without the master key holds nothing that signs
a token or checks a secret.

The master key is a file of 32 random bytes (base64url) that only its owner may
read: ``--master-key-file`` (``AUTHKESTRA_SERVER_MASTER_KEY_FILE``). On the
embedded SQLite default, when none is given, it is the file beside the store
(``<store>.master-key``), generated with the store. A file that others may read
is refused: anyone who can read it can mint tokens.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._jose import base64url as b64url
from .private_files import PrivateFileError, read_private_file

__all__ = [
    "SEALED_PREFIX",
    "MasterKey",
    "MasterKeyError",
    "MasterKeyExists",
    "WrongMasterKey",
    "default_master_key_path",
]

#: What a sealed value starts with (the format's version).
SEALED_PREFIX = "kek1."
_NONCE_BYTES = 12
_KEY_BYTES = 32


class MasterKeyError(ValueError):
    """The master key cannot be had: missing, unreadable, malformed, or readable by others."""


class MasterKeyExists(MasterKeyError):
    """A master key file is already where a new one was to be written."""


class WrongMasterKey(MasterKeyError):
    """A sealed value does not open under this master key (another key sealed it)."""


def default_master_key_path(db_url: str) -> Path | None:
    """Where the embedded SQLite store's master key lives: beside it; None for other stores."""
    if not db_url.startswith("sqlite:///") or db_url in ("sqlite:///", "sqlite:///:memory:"):
        return None
    return Path(db_url.removeprefix("sqlite:///") + ".master-key")


class MasterKey:
    """A master key, loaded from its file (or generated into one)."""

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        if len(key) != _KEY_BYTES:
            raise MasterKeyError(f"a master key is {_KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MasterKey:
        """The master key in ``path``; MasterKeyError naming the file for anything wrong
        (missing, unreadable, readable by others, not a key)."""
        path = Path(path)
        try:
            text = read_private_file(path, "master key").decode("ascii").strip()
        except PrivateFileError as exc:
            raise MasterKeyError(str(exc)) from None
        except UnicodeDecodeError:
            text = ""
        key = b64url.decode(text) if b64url.is_base64url(text) else b""
        if len(key) != _KEY_BYTES:
            raise MasterKeyError(
                f"the master key file {path} does not hold a master key"
                f" ({_KEY_BYTES} random bytes, base64url)"
            )
        return cls(key, path)

    @classmethod
    def generate(cls, path: str | os.PathLike[str]) -> MasterKey:
        """A new master key, written to ``path`` (which must not exist), owner-readable only.

        The file appears whole or not at all (written aside, then linked into place), so
        two servers starting on one new store never read half a key: the second one to
        link gets MasterKeyExists and loads the first one's.
        """
        path = Path(path)
        key = secrets.token_bytes(_KEY_BYTES)
        aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        try:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(b64url.encode(key) + "\n")
            os.link(aside, path)
        except FileExistsError:
            raise MasterKeyExists(f"{path} exists already: not overwritten") from None
        except OSError as exc:
            raise MasterKeyError(
                f"cannot write the master key file {path}: {exc.strerror}"
            ) from None
        finally:
            aside.unlink(missing_ok=True)
        return cls(key, path)

    def seal(self, plaintext: str, what: str) -> str:
        """``plaintext`` sealed for the place ``what`` names (``signing-key:<kid>``...)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), what.encode("utf-8"))
        return SEALED_PREFIX + b64url.encode(nonce + sealed)

    def open(self, value: str, what: str) -> str:
        """What :meth:`seal` sealed for ``what``; WrongMasterKey if it does not open."""
        if not is_sealed(value):
            raise WrongMasterKey(f"the {what} in the store is not sealed")
        try:
            raw = b64url.decode(value[len(SEALED_PREFIX) :])
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], what.encode())
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, UnicodeError):
            where = f" ({self.path})" if self.path is not None else ""
            raise WrongMasterKey(
                f"the master key{where} does not open this store's {what}: the store was"
                " sealed under another master key (give the right --master-key-file)"
            ) from None

    def __repr__(self) -> str:
        return f"MasterKey(path={str(self.path) if self.path else None!r})"


def is_sealed(value: str) -> bool:
    """True for a value :meth:`MasterKey.seal` made (anything else is legacy plaintext)."""
    return value.startswith(SEALED_PREFIX)
