"""Normalising the parameters of a token request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import ConfigError
from .scope import is_scope_token

__all__ = [
    "RESERVED_PARAMS",
    "ScopesLike",
    "normalize_extra_params",
    "normalize_resources",
    "normalize_scopes",
]

ScopesLike = str | Iterable[str] | None

#: Parameters the flow sets itself; extra_params may not override them.
RESERVED_PARAMS = frozenset(
    {
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "audience",
        "resource",
        "client_assertion",
        "client_assertion_type",
    }
)


def normalize_scopes(scopes: ScopesLike) -> tuple[str, ...]:
    """Scopes as a tuple of distinct scope tokens, in the order given.

    Accepts a space-separated string, or any iterable of strings (each of which
    may itself hold several space-separated scopes). Invalid characters are a
    :class:`ConfigError`.
    """
    if scopes is None:
        return ()
    items: Iterable[str] = [scopes] if isinstance(scopes, str) else scopes
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"scopes must be strings, got {type(item).__name__}")
        for token in item.split():
            if not is_scope_token(token):
                raise ConfigError(
                    f"scope {token!r} has characters RFC 6749 §3.3 does not allow"
                    " (quotes, backslashes, non-ASCII or control characters)"
                )
            seen[token] = None
    return tuple(seen)


def normalize_resources(resource: str | Iterable[str] | None) -> tuple[str, ...]:
    """RFC 8707 resource indicators: absolute URIs without a fragment, distinct."""
    if resource is None:
        return ()
    items = [resource] if isinstance(resource, str) else list(resource)
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigError("each resource must be a non-empty string (an absolute URI)")
        if "://" not in item and not item.startswith("urn:"):
            raise ConfigError(f"resource {item!r} must be an absolute URI (RFC 8707 §2)")
        if "#" in item:
            raise ConfigError(f"resource {item!r} must not contain a fragment (RFC 8707 §2)")
        seen[item] = None
    return tuple(seen)


def normalize_extra_params(extra: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Extra form parameters, checked: string keys and values, none reserved."""
    if not extra:
        return ()
    out = []
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError("extra_params keys and values must be strings")
        if key in RESERVED_PARAMS:
            raise ConfigError(
                f"extra_params may not set {key!r}: use the flow's own argument for it"
            )
        out.append((key, value))
    return tuple(sorted(out))
