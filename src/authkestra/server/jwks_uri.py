"""Fetching a client's JWK Set from its ``jwks_uri``, without becoming an SSRF tool.

The URL is the client's (or its operator's) to choose, and the server fetches
it from inside the network, so: ``https`` only; the host is resolved here and
every address it resolves to must be public (no loopback, private, link-local,
shared, reserved or multicast address), and the connection goes to the address
that was checked (no second lookup an attacker's DNS could answer differently),
with TLS still verified for the host name; no redirects, no proxies from the
environment; at most 64 KiB, within 5 seconds. The key sets are cached per
client for a few minutes.

``allow_insecure`` (the ``allow_insecure_jwks_uri`` server setting) is for
tests: it allows ``http://`` to a loopback host, and any address.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio.to_thread
import httpx

from .._protocol.urls import is_loopback_host
from ..errors import NetworkError
from .client_keys import ClientKey, InvalidJwks, parse_jwks

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_JWKS_BYTES",
    "AsyncGuardedTransport",
    "GuardedTransport",
    "JwksUriError",
    "RemoteKeySets",
    "check_jwks_uri",
    "fetch_jwks",
]

logger = logging.getLogger("authkestra.server")

MAX_JWKS_BYTES = 64 * 1024
FETCH_TIMEOUT = 5.0
MAX_URI_CHARS = 2048
#: Seconds a failed fetch is remembered, so a broken jwks_uri is not hammered.
FAILURE_HOLD = 5.0
#: An unknown kid re-fetches the set, at most this often per client (key rotation).
MIN_REFETCH_INTERVAL = 10.0

Resolver = Callable[[str, int], list[str]]


class JwksUriError(ValueError):
    """A jwks_uri that may not be fetched, or whose answer is no usable JWK Set."""


def check_jwks_uri(uri: str, *, allow_insecure: bool = False) -> str:
    """The URL, if its form may be fetched (no network); else JwksUriError saying why."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_CHARS:
        raise JwksUriError(f"a jwks_uri is a URL of at most {MAX_URI_CHARS} characters")
    if not uri.isascii() or any(ch.isspace() or ord(ch) < 0x21 for ch in uri):
        raise JwksUriError("a jwks_uri must be ASCII without spaces")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise JwksUriError("the jwks_uri is not a valid URL") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if not host:
        raise JwksUriError("the jwks_uri has no host")
    if parts.username is not None or parts.password is not None:
        raise JwksUriError("the jwks_uri must not hold credentials")
    if parts.fragment:
        raise JwksUriError("the jwks_uri must not have a fragment")
    if scheme == "http":
        if not (allow_insecure and is_loopback_host(host)):
            raise JwksUriError("the jwks_uri must be https")
    elif scheme != "https":
        raise JwksUriError("the jwks_uri must be https")
    if port == 0:
        raise JwksUriError("the jwks_uri has port 0")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not _address_allowed(str(literal), allow_insecure=allow_insecure):
        raise JwksUriError("the jwks_uri points at a loopback, private or reserved address")
    if not allow_insecure and is_loopback_host(host):
        raise JwksUriError("the jwks_uri points at a loopback address")
    return uri


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _address_allowed(address: str, *, allow_insecure: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_insecure:
        return True
    return ip.is_global and not ip.is_multicast


_ssl_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context  # noqa: PLW0603 - built once, on first use
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context


class _Pin:
    """Checks a request's URL and the addresses its host resolves to, and points the request
    at the address checked (Host header and TLS server name keep the host name)."""

    def __init__(self, *, allow_insecure: bool, resolver: Resolver | None) -> None:
        self.allow_insecure = allow_insecure
        self.resolver = resolver or _system_resolver

    def __call__(self, request: httpx.Request) -> httpx.Request:
        try:
            return self._pin(request)
        except JwksUriError as exc:
            # Not retryable: asking again gets the same refusal.
            raise NetworkError(str(exc), retryable=False) from None

    def _pin(self, request: httpx.Request) -> httpx.Request:
        uri = str(request.url)
        check_jwks_uri(uri, allow_insecure=self.allow_insecure)
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise JwksUriError(
                f"the jwks_uri host does not resolve ({type(exc).__name__})"
            ) from None
        if not addresses:
            raise JwksUriError("the jwks_uri host does not resolve")
        for address in addresses:
            if not _address_allowed(address, allow_insecure=self.allow_insecure):
                raise JwksUriError(
                    "the jwks_uri host resolves to a loopback, private or reserved address"
                )
        if scheme == "http" and not all(ipaddress.ip_address(a).is_loopback for a in addresses):
            raise JwksUriError("an http jwks_uri must stay on loopback")
        # Connect to the address just checked: no second lookup a hostile DNS could answer.
        address = addresses[0]
        literal = f"[{address}]" if ":" in address else address
        pinned = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        default_port = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
        host_literal = f"[{host}]" if ":" in host else host
        headers = httpx.Headers(request.headers)
        headers["Host"] = host_literal if default_port else f"{host_literal}:{port}"
        extensions = dict(request.extensions)
        if scheme == "https":
            extensions["sni_hostname"] = host
        return httpx.Request(
            request.method, pinned, headers=headers, stream=request.stream, extensions=extensions
        )


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport for URLs others chose (a client's ``jwks_uri``, a trusted issuer's
    metadata and keys): only what :func:`check_jwks_uri` allows, to public addresses only,
    connecting to the address it checked; no proxies from the environment."""

    def __init__(
        self,
        *,
        allow_insecure: bool = False,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool | None = None,
    ) -> None:
        super().__init__(verify=_tls() if verify is None else verify, trust_env=False)
        self._pin = _Pin(allow_insecure=allow_insecure, resolver=resolver)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return super().handle_request(self._pin(request))


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """:class:`GuardedTransport` for ``httpx.AsyncClient`` (the lookup in a worker thread)."""

    def __init__(
        self,
        *,
        allow_insecure: bool = False,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool | None = None,
    ) -> None:
        super().__init__(verify=_tls() if verify is None else verify, trust_env=False)
        self._pin = _Pin(allow_insecure=allow_insecure, resolver=resolver)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pinned = await anyio.to_thread.run_sync(self._pin, request)
        return await super().handle_async_request(pinned)


def fetch_jwks(
    uri: str,
    *,
    allow_insecure: bool = False,
    timeout: float = FETCH_TIMEOUT,
    max_bytes: int = MAX_JWKS_BYTES,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool | None = None,
) -> dict[str, Any]:
    """The JSON document at ``uri``, fetched under the rules above (blocking)."""
    check_jwks_uri(uri, allow_insecure=allow_insecure)
    deadline = time.monotonic() + timeout
    transport = GuardedTransport(allow_insecure=allow_insecure, resolver=resolver, verify=verify)
    try:
        with (
            httpx.Client(
                transport=transport,
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(timeout),
            ) as client,
            client.stream(
                "GET", uri, headers={"Accept": "application/jwk-set+json, application/json"}
            ) as response,
        ):
            if response.status_code != 200:
                raise JwksUriError(f"the jwks_uri answered HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise JwksUriError(f"the JWK Set at the jwks_uri exceeds {max_bytes} bytes")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise JwksUriError(f"the JWK Set at the jwks_uri exceeds {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise JwksUriError(f"the jwks_uri took more than {timeout:g} s")
    except NetworkError as exc:
        raise JwksUriError(exc.message) from None
    except httpx.HTTPError as exc:
        raise JwksUriError(f"the jwks_uri could not be fetched ({type(exc).__name__})") from None
    try:
        document = json.loads(bytes(body).decode("utf-8"))
    except (ValueError, RecursionError):
        raise JwksUriError("the jwks_uri answered something that is not JSON") from None
    if not isinstance(document, dict):
        raise JwksUriError("the jwks_uri answered JSON that is not a JWK Set")
    return document


Fetcher = Callable[[str], dict[str, Any]]


class RemoteKeySets:
    """Client key sets from their ``jwks_uri``: fetched on demand, cached per client."""

    def __init__(
        self,
        *,
        cache_seconds: float,
        allow_insecure: bool = False,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache_seconds = cache_seconds
        self.allow_insecure = allow_insecure
        self._fetch = fetcher or (lambda uri: fetch_jwks(uri, allow_insecure=allow_insecure))
        self._clock = clock
        # client id -> (uri, fetched at, keys or None for a failure)
        self._entries: dict[str, tuple[str, float, list[ClientKey] | None]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, client_id: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(client_id)
            if lock is None:
                if len(self._locks) > 10_000:
                    self._locks.clear()
                lock = self._locks[client_id] = threading.Lock()
            return lock

    def _fresh(
        self, client_id: str, uri: str, *, refresh: bool
    ) -> tuple[bool, list[ClientKey] | None]:
        entry = self._entries.get(client_id)
        if entry is None or entry[0] != uri:
            return False, None
        age = self._clock() - entry[1]
        if entry[2] is None:
            return age < min(FAILURE_HOLD, self.cache_seconds), None
        if refresh:
            return age < min(MIN_REFETCH_INTERVAL, self.cache_seconds), entry[2]
        return age < self.cache_seconds, entry[2]

    def keys(self, client_id: str, uri: str, *, refresh: bool = False) -> list[ClientKey]:
        """The client's usable keys; JwksUriError when they cannot be had.

        ``refresh``: the set lacks a kid an assertion names -- maybe the client rotated
        its keys, so fetch again (at most every few seconds per client).
        """
        fresh, keys = self._fresh(client_id, uri, refresh=refresh)
        if fresh:
            if keys is None:
                raise JwksUriError("the client's jwks_uri failed a moment ago")
            return keys
        with self._lock_for(client_id):
            fresh, keys = self._fresh(client_id, uri, refresh=refresh)
            if fresh:  # fetched by another thread while this one waited
                if keys is None:
                    raise JwksUriError("the client's jwks_uri failed a moment ago")
                return keys
            now = self._clock()
            try:
                keys = parse_jwks(self._fetch(uri), strict=False)
            except (JwksUriError, InvalidJwks) as exc:
                logger.warning(
                    "authkestra server: JWK Set of client %r from its jwks_uri: %s", client_id, exc
                )
                self._store(client_id, (uri, now, None))
                raise JwksUriError(str(exc)) from None
            self._store(client_id, (uri, now, keys))
            return keys

    def _store(self, client_id: str, entry: tuple[str, float, list[ClientKey] | None]) -> None:
        with self._guard:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[client_id] = entry
