"""A lock file that does not outlive its lock (POSIX), for :class:`~authkestra.cache.FileCache`.

The holder removes the file while it still holds the lock, then unlocks. A process that
opened the file before it was removed and then got the lock finds, on checking, that the
path no longer names the file it locked (gone, or a new file): it lets go and starts
again. So at most one process holds the lock on the file the path names, and no lock
file is left behind once nobody holds it. Elsewhere (Windows), filelock's lock, whose
file stays.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["held"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def held(path: Path, *, blocking: bool) -> Iterator[bool]:
    """Hold the lock on ``path`` for the block: True; False at once when another process
    holds it and ``blocking`` is false."""
    if fcntl is None:  # pragma: no cover - Windows
        yield from _filelock(path, blocking=blocking)
        return
    fd = _acquire(path, blocking=blocking)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        # Removed before unlocking: whoever waits on this file sees it gone and starts over.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(path: Path, *, blocking: bool) -> int | None:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            on_path = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            on_path = None
        mine = os.fstat(fd)
        if on_path is not None and (on_path.st_dev, on_path.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        # The holder before removed it while this process waited: lock the new one.
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        time.sleep(0)


def _filelock(path: Path, *, blocking: bool) -> Iterator[bool]:  # pragma: no cover - Windows
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), mode=0o600, thread_local=False)
    try:
        lock.acquire(blocking=blocking)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
