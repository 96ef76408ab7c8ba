"""Which of the store's values are sealed under the master key, and how the store finds it.

Sealed: every signing key's private JWK, and the named states of
:data:`SEALED_STATES` (the HMAC key that protects client secrets). A check
value (:data:`CHECK_STATE`) sealed with the first master key tells a wrong key
at once, before anything is read with it. Values written by a version that did
not seal them are sealed when the store is next opened
(:meth:`~authkestra.server.store.Store.seal_secrets`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..master_key import (
    MasterKey,
    MasterKeyError,
    MasterKeyExists,
    default_master_key_path,
    is_sealed,
)

__all__ = ["CHECK_STATE", "CHECK_TEXT", "SEALED_STATES", "Sealer"]

#: Named states that are secrets.
SEALED_STATES = frozenset({"client_secret_hmac_key"})
#: A value sealed with the master key, to know a wrong one before it reads anything.
CHECK_STATE = "master_key_check"
CHECK_TEXT = "authkestra master key"


def key_place(kid: str) -> str:
    return f"signing-key:{kid}"


def state_place(name: str) -> str:
    return f"state:{name}"


class Sealer:
    """Seals and opens the store's secrets, with the master key found on first need.

    ``master_key``: the operator's, or None -- then, for an SQLite store, the file
    beside it (made if the store has nothing sealed yet); any other store needs one.
    """

    def __init__(
        self,
        db_url: str,
        master_key: MasterKey | None,
        *,
        sealed_already: Callable[[], bool],
    ) -> None:
        self.db_url = db_url
        self._key = master_key
        self._sealed_already = sealed_already
        #: Where a master key was made for this store (to be said), if one was.
        self.generated: Path | None = None

    @property
    def key(self) -> MasterKey:
        if self._key is None:
            self._key = self._default()
        return self._key

    def replace(self, key: MasterKey) -> None:
        self._key = key

    def _default(self) -> MasterKey:
        path = default_master_key_path(self.db_url)
        if path is None:
            raise MasterKeyError(
                "this store needs a master key to seal its signing keys: give"
                " --master-key-file (AUTHKESTRA_SERVER_MASTER_KEY_FILE), a file of 32 random"
                " bytes readable by its owner only"
            )
        # Asked before looking for the file: whoever sealed something made the file first,
        # so a store found sealed has its key on disk by the time we look (if it is there).
        sealed_already = self._sealed_already()
        if path.exists():
            return MasterKey.load(path)
        if sealed_already:
            raise MasterKeyError(
                f"this store's secrets are sealed under a master key that is not at {path}:"
                " give --master-key-file (AUTHKESTRA_SERVER_MASTER_KEY_FILE)"
            )
        try:
            key = MasterKey.generate(path)
        except MasterKeyExists:
            return MasterKey.load(path)  # another server on this store made it just now
        self.generated = path  # said by whoever opened the store (the CLI, or serve's log)
        return key

    def seal_key(self, kid: str, private_jwk: str) -> str:
        return self.key.seal(private_jwk, key_place(kid))

    def open_key(self, kid: str, stored: str) -> str:
        return self.key.open(stored, key_place(kid)) if is_sealed(stored) else stored

    def seal_state(self, name: str, value: str) -> str:
        return self.key.seal(value, state_place(name)) if name in SEALED_STATES else value

    def open_state(self, name: str, stored: str) -> str:
        if name in SEALED_STATES and is_sealed(stored):
            return self.key.open(stored, state_place(name))
        return stored
