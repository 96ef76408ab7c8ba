"""Token cache backends for :class:`~authkestra.ClientCredentialsFlow` (``cache=...``).

- :class:`MemoryCache` -- in the process (the default);
- :class:`FileCache` -- a 0600 file shared by processes on one machine;
- :class:`RedisCache` -- Redis shared by a fleet (``pip install 'authkestra[redis]'``);
- :class:`TokenCache` -- the base class to plug in your own store.
"""

from .base import CachedToken, TokenCache
from .file import FileCache
from .memory import MemoryCache
from .redis import RedisCache

__all__ = ["CachedToken", "FileCache", "MemoryCache", "RedisCache", "TokenCache"]
