"""The public API is a curated list, and the error tree is exactly the documented one."""

from __future__ import annotations

import authkestra
from authkestra import errors

ERROR_TREE = {
    "AuthError": Exception,
    "ConfigError": "AuthError",
    "InvalidToken": "AuthError",
    "InsufficientScope": "AuthError",
    "NetworkError": "AuthError",
    "ProviderError": "AuthError",
    "OAuthError": "ProviderError",
    "InvalidRequest": "OAuthError",
    "InvalidClient": "OAuthError",
    "InvalidGrant": "OAuthError",
    "UnauthorizedClient": "OAuthError",
    "UnsupportedGrantType": "OAuthError",
    "InvalidScope": "OAuthError",
    "InvalidTarget": "OAuthError",
    "RateLimited": "ProviderError",
    "MalformedResponse": "ProviderError",
}


def test_all_is_curated_and_importable() -> None:
    assert sorted(authkestra.__all__) == sorted(set(authkestra.__all__))
    for name in authkestra.__all__:
        assert hasattr(authkestra, name), name
    assert {"ClientCredentialsFlow", "Token", "Secret", "RetryPolicy"} <= set(authkestra.__all__)


def test_error_tree() -> None:
    for name, parent in ERROR_TREE.items():
        cls = getattr(authkestra, name)
        base = parent if isinstance(parent, type) else getattr(authkestra, parent)
        assert cls.__bases__ == (base,), name


def test_wire_codes_are_a_table() -> None:
    assert {
        "invalid_request": authkestra.InvalidRequest,
        "invalid_client": authkestra.InvalidClient,
        "invalid_grant": authkestra.InvalidGrant,
        "unauthorized_client": authkestra.UnauthorizedClient,
        "unsupported_grant_type": authkestra.UnsupportedGrantType,
        "invalid_scope": authkestra.InvalidScope,
        "invalid_target": authkestra.InvalidTarget,
    } == errors.OAUTH_ERRORS
    err = errors.oauth_error_from_wire("invalid_target", status_code=400, error_description="d")
    assert isinstance(err, authkestra.InvalidTarget) and err.error == "invalid_target"
    other = errors.oauth_error_from_wire("temporarily_unavailable", status_code=503)
    assert type(other) is authkestra.OAuthError and other.error == "temporarily_unavailable"


def test_flow_importable_from_both_places() -> None:
    from authkestra.flow import ClientCredentialsFlow

    assert ClientCredentialsFlow is authkestra.ClientCredentialsFlow
