"""A token cache in one file, shared by processes on one machine (cron jobs, the CLI)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._lockfile import held
from .base import CachedToken, TokenCache

__all__ = ["FileCache"]

logger = logging.getLogger("authkestra")


class FileCache(TokenCache):
    """Tokens in a JSON file readable only by its owner (mode 0600).

    Writes are atomic (a temporary file renamed over the old one), so a reader
    never sees half a file; ``lock()`` is a lock on ``PATH.lock`` (``flock`` on POSIX,
    released by the system if its holder dies, and the file removed by its holder so
    none is left behind; filelock's on Windows), so of several processes that need a
    new token at once, one fetches it. The file holds access tokens: keep it in a directory only the
    service's user can read. A corrupt or foreign file is ignored and replaced,
    never trusted; on POSIX, so is one that others can read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        #: The file (its inode, size and time) last warned about: one warning per bad file,
        #: not one per read (a token request reads it up to three times).
        self._warned: tuple[int, int, int] | None = None

    # -- records -----------------------------------------------------------------------

    def _read_all(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {}
        with os.fdopen(fd, "rb") as fh:
            stat = os.fstat(fh.fileno())
            # Windows reports no group/other permission bits to check.
            if os.name == "posix" and stat.st_mode & 0o077:
                self._warn(stat, "readable by others; ignoring it")
                return {}
            data = fh.read(4 * 1024 * 1024)
        try:
            obj = json.loads(data)
        except ValueError:
            self._warn(stat, "corrupt; starting afresh")
            return {}
        return obj if isinstance(obj, dict) else {}

    def _warn(self, stat: os.stat_result, problem: str) -> None:
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen != self._warned:
            self._warned = seen
            logger.warning("authkestra: token cache %s is %s", self.path, problem)

    def _write_all(self, records: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            if hasattr(os, "fchmod"):  # POSIX; mkstemp made it 0600 already, said again
                os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(records, fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        # Read-modify-write under a short lock so two writers do not drop each other's keys.
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with held(self.path.with_name(self.path.name + ".write-lock"), blocking=True):
            yield

    def load(self, key: str) -> CachedToken | None:
        return CachedToken.parse_alive(self._read_all().get(key))

    def save(self, key: str, record: CachedToken) -> None:
        with self._exclusive():
            records = self._read_all()
            now = time.time()
            kept = {k: v for k, v in records.items() if CachedToken.parse_alive(v, now) is not None}
            kept[key] = record.to_json()
            self._write_all(kept)

    def delete(self, key: str) -> None:
        with self._exclusive():
            records = self._read_all()
            if records.pop(key, None) is not None:
                self._write_all(records)

    # -- cross-process fetch lock ------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str, ttl: float) -> Iterator[bool]:
        """The lock file's lock, without waiting; False if another process holds it.

        The system releases it when its holder dies, so ``ttl`` is not needed to
        recover from a crash here.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with held(self.lock_path, blocking=False) as got:
            yield got

    def __repr__(self) -> str:
        return f"FileCache({str(self.path)!r})"
