"""Endpoint URL checks and metadata URL construction."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError

__all__ = ["check_endpoint_url", "is_loopback_host", "metadata_urls"]


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, *, what: str, allow_insecure_http: bool) -> str:
    """Return ``url`` if it is fit to receive credentials, else raise ConfigError.

    It must be absolute, carry no user info or fragment, and use https -- http
    is allowed only on loopback hosts or with ``allow_insecure_http``.
    """
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{what} must be a non-empty URL string")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL ({exc})") from None
    del port
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(
            f"{what} must be an absolute https:// URL, got {parts.scheme or 'no'} scheme"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{what} must not contain credentials; pass client_id and client_secret instead"
        )
    if parts.fragment:
        raise ConfigError(f"{what} must not contain a #fragment")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ConfigError(f"{what} must not contain whitespace or control characters")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"{what} uses plain http to {parts.hostname}: credentials would cross the network"
            " unencrypted. Use https, or allow it explicitly if you really mean it:"
            " allow_insecure_http=True in Python, --allow-insecure-http on the command line"
        )
    return url


def metadata_urls(issuer: str) -> list[str]:
    """The metadata URLs to try for ``issuer``, in order.

    RFC 8414 §3 inserts ``/.well-known/oauth-authorization-server`` between the
    host and the issuer's path; OpenID Connect Discovery appends
    ``/.well-known/openid-configuration`` to the issuer.
    """
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")
    )
    oidc = urlunsplit(
        (parts.scheme, parts.netloc, f"{path}/.well-known/openid-configuration", "", "")
    )
    return [rfc8414, oidc]
