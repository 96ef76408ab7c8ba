"""The public API is a curated list, and the error tree is exactly the documented one."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import pytest

import authkestra
from authkestra import errors

#: Every public module and exactly what it exports. A change here is a change of the public
#: API: deliberate, documented, and (for a removal or a rename) with a deprecated alias.
PUBLIC: dict[str, list[str]] = {
    "authkestra": [
        "AssertionFile", "AuthError", "AuthMethod", "ClientAssertionError",
        "ClientCredentialsFlow", "ConfigError", "EnvSecret",
        "FileSecret", "InsufficientScope", "InvalidClient", "InvalidGrant", "InvalidRequest",
        "InvalidScope", "InvalidTarget", "InvalidToken", "MalformedResponse", "NetworkError",
        "OAuthError", "ProviderError", "RateLimited", "RetryPolicy", "Secret", "SecretSource",
        "Token", "UnauthorizedClient", "UnsupportedGrantType", "__version__",
    ],
    "authkestra.errors": [
        "AuthError", "ClientAssertionError", "ConfigError", "InsufficientScope", "InvalidClient", "InvalidGrant",
        "InvalidRequest", "InvalidScope", "InvalidTarget", "InvalidToken", "MalformedResponse",
        "NetworkError", "OAUTH_ERRORS", "OAuthError", "ProviderError", "RateLimited",
        "UnauthorizedClient", "UnsupportedGrantType", "oauth_error_from_wire",
    ],
    "authkestra.secrets": [
        "EnvSecret", "FileSecret", "Secret", "SecretLike", "SecretSource", "to_secret_source",
    ],
    "authkestra.token": ["Token"],
    "authkestra.assertions": [
        "AssertionFile", "AssertionLike", "CallableAssertion", "to_assertion_source",
    ],
    "authkestra.flow": [
        "AuthMethod", "ClientCredentialsFlow", "RetryPolicy", "ServerMetadata", "TokenSource",
    ],
    "authkestra.flow.events": ["TokenEvent", "TokenEventHook", "TokenEventKind"],
    "authkestra.cache": ["CachedToken", "FileCache", "MemoryCache", "RedisCache", "TokenCache"],
    "authkestra.resource": [
        "AccessToken", "DEFAULT_ALGORITHMS", "InsufficientScope", "IntrospectionVerifier",
        "InvalidToken", "JWTVerifier", "ResourceMetadata", "Revocations", "TokenVerifier",
    ],
    "authkestra.resource.protected_resource": [
        "METADATA_STATE_KEY", "ResourceMetadata", "metadata_for", "serve_resource_metadata",
    ],
    "authkestra.resource.revocations": ["Revocations"],
    "authkestra.resource.flask": ["CONFIG_KEY", "EXTENSION_KEY", "Authkestra", "require_scopes"],
    "authkestra.resource.django": [
        "AuthkestraAuthentication", "AuthkestraMiddleware", "HasScopes", "exception_handler",
        "require_scopes",
    ],
    "authkestra.resource.grpc": ["AioTokenInterceptor", "TokenInterceptor", "access_token"],
    "authkestra.resource.aiohttp": [
        "ACCESS_TOKEN_KEY", "access_token", "bearer_token_middleware", "require_scopes",
    ],
    "authkestra.resource.asgi": ["ACCESS_TOKEN_KEY", "BearerTokenMiddleware"],
    "authkestra.resource.dpop": [
        "DPOP_ALGORITHMS", "DPoPChecker", "InvalidDPoPProof", "ReplayCache", "ReplaySetFull",
        "ReplayStore", "bound_thumbprint", "check_dpop",
    ],
    "authkestra.resource.fastapi": [
        "VERIFIER_STATE_KEY", "ClientCredentialsScheme", "require_scopes", "use_authkestra",
    ],
    "authkestra.resource.redis_replay": ["RedisReplayCache"],
    "authkestra.resource.starlette": [
        "BearerTokenBackend", "TokenUser", "on_auth_error", "require_scopes",
    ],
    "authkestra.server.admin": ["ADMIN_SCOPE", "METRICS_SCOPE", "create_admin_app"],
    "authkestra.server": ["ServerSettings", "create_app"],
    "authkestra.tls": ["ClientCertificate", "certificate_thumbprint", "presented_certificate"],
    "authkestra.tls.uvicorn": ["TLSExtensionHTTPProtocol", "tls_extension", "uvicorn_tls_options"],
    "authkestra.cli": ["COMMANDS", "Environment", "app", "main"],
    "authkestra.demo": ["run_demo"],
    "authkestra.testing": ["LocalIssuer"],
}  # fmt: skip
#: Packages that are parts of the server, not API: their names may change.
INTERNAL_PACKAGES = {
    "authkestra.server.endpoints",
    "authkestra.server.store",
    "authkestra.server.store.migrations",
    "authkestra.server.store.migrations.versions",
}

ERROR_TREE = {
    "AuthError": Exception,
    "ConfigError": "AuthError",
    "ClientAssertionError": "ConfigError",
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


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_module_exports_exactly_its_list(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(PUBLIC[name])
    assert len(set(module.__all__)) == len(module.__all__)
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.{exported}"


def test_every_public_package_is_listed() -> None:
    packages = {
        info.name
        for info in pkgutil.walk_packages(authkestra.__path__, "authkestra.")
        if info.ispkg and not any(part.startswith("_") for part in info.name.split("."))
    }
    assert packages - INTERNAL_PACKAGES <= set(PUBLIC)


def test_flow_metadata_is_a_public_type() -> None:
    import typing

    from authkestra.flow import ClientCredentialsFlow, ServerMetadata

    hints = typing.get_type_hints(ClientCredentialsFlow.metadata.fget)
    assert hints["return"] == ServerMetadata | None


def test_the_renamed_starlette_decorator_keeps_its_old_name_for_a_release() -> None:
    from authkestra.resource import starlette

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decorate = starlette.requires_scopes("read")
    assert [w.category for w in caught] == [DeprecationWarning]
    assert "require_scopes" in str(caught[0].message)
    assert callable(decorate)


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


def test_the_benchmarks_use_the_public_api_only() -> None:
    """bench/ measures what users get: it imports public modules, nothing private."""
    import ast
    import pathlib

    bench = pathlib.Path(__file__).resolve().parents[2] / "bench"
    used: set[str] = set()
    for path in bench.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("authkestra"):
                used.add(str(node.module))
            elif isinstance(node, ast.Import):
                used.update(a.name for a in node.names if a.name.startswith("authkestra"))
    assert used and used <= set(PUBLIC), used - set(PUBLIC)
