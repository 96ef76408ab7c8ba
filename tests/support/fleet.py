"""Worker processes for fleet tests: each builds its own flow and asks for a token."""

from __future__ import annotations

from typing import Any


def fetch_token(token_url: str, cache_kind: str, cache_arg: str, barrier: Any) -> str:
    """Run in a separate process: wait for the others, then get a token through the shared cache."""
    from authkestra import ClientCredentialsFlow, RetryPolicy
    from authkestra.cache import FileCache, RedisCache

    cache = FileCache(cache_arg) if cache_kind == "file" else RedisCache(cache_arg)
    flow = ClientCredentialsFlow(
        "svc", "secret-value-123", token_url, cache=cache, retry=RetryPolicy(max_attempts=1)
    )
    barrier.wait(timeout=30)
    return flow.get_token_sync(["read"]).access_token
