"""Files that hold the server's secrets: read only when no one but their owner may read them.

The master key, the HMAC key file, and files holding a database or Redis URL with
its password are refused when group or others may read them: anyone who can read
them can mint tokens or read the store. A TLS private key is only warned about
(Debian's ``ssl-cert`` group reads ``/etc/ssl/private`` by design): ``serve`` says so.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["PrivateFileError", "loose_mode", "read_private_file"]


class PrivateFileError(ValueError):
    """A secret's file is missing, unreadable, or readable by others (the message says which)."""


def loose_mode(path: Path) -> int | None:
    """``path``'s permission bits if group or others have any, else None (and on Windows)."""
    if os.name != "posix":
        return None
    mode = path.stat().st_mode
    return stat.S_IMODE(mode) if mode & (stat.S_IRWXG | stat.S_IRWXO) else None


def read_private_file(path: Path, what: str) -> bytes:
    """The bytes of ``path``, which holds ``what``; PrivateFileError naming the file and the fix."""
    try:
        loose = loose_mode(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise PrivateFileError(f"no {what} file at {path}") from None
    except OSError as exc:
        raise PrivateFileError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if loose is not None:
        raise PrivateFileError(
            f"the {what} file {path} may be read by others (mode {loose:04o}): chmod 600 {path}"
        )
    return data
