"""Scopes, resources and extra parameters are normalised or refused with a ConfigError."""

from __future__ import annotations

import pytest

from authkestra import ConfigError
from authkestra._protocol.params import (
    normalize_extra_params,
    normalize_resources,
    normalize_scopes,
)
from authkestra._protocol.urls import check_endpoint_url, is_loopback_host, metadata_urls


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, ()),
        ("", ()),
        ("read", ("read",)),
        ("read  write\tread", ("read", "write")),
        (["read", "write"], ("read", "write")),
        (("write", "read write"), ("write", "read")),
        (["a:b/c", "urn:x"], ("a:b/c", "urn:x")),
    ],
)
def test_scopes(given: object, expected: tuple[str, ...]) -> None:
    assert normalize_scopes(given) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ['re"ad', "r\\w", "lecture\u00e9", ["ok", 3]])
def test_bad_scopes(bad: object) -> None:
    with pytest.raises(ConfigError):
        normalize_scopes(bad)  # type: ignore[arg-type]


def test_resources() -> None:
    assert normalize_resources("https://a/") == ("https://a/",)
    assert normalize_resources(["https://a/", "https://a/", "urn:b"]) == ("https://a/", "urn:b")
    for bad in ["relative/path", "https://a/#frag", ""]:
        with pytest.raises(ConfigError):
            normalize_resources(bad)


def test_extra_params() -> None:
    assert normalize_extra_params({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))
    for reserved in ["grant_type", "client_secret", "scope", "client_id"]:
        with pytest.raises(ConfigError, match=reserved):
            normalize_extra_params({reserved: "x"})
    with pytest.raises(ConfigError):
        normalize_extra_params({"a": 1})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "127.8.9.10", "[::1]", "::1", "api.localhost"]
)
def test_loopback(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["example.com", "10.0.0.1", "localhost.example.com", "128.0.0.1"])
def test_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


def test_endpoint_urls() -> None:
    assert check_endpoint_url("https://as.example/token", what="u", allow_insecure_http=False)
    assert check_endpoint_url("http://127.0.0.1:8080/token", what="u", allow_insecure_http=False)
    assert check_endpoint_url("http://as.internal/token", what="u", allow_insecure_http=True)
    with pytest.raises(ConfigError, match="allow_insecure_http"):
        check_endpoint_url("http://as.example/token", what="token_url", allow_insecure_http=False)
    for bad in [
        "ftp://as.example/",
        "as.example/token",
        "https://user:pw@as.example/",
        "https://a/#f",
        "https://a:99999/",
        "https://a/ b",
        "",
    ]:
        with pytest.raises(ConfigError):
            check_endpoint_url(bad, what="u", allow_insecure_http=False)


def test_credentials_in_url_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        check_endpoint_url(
            "https://user:hunter2@as.example/", what="token_url", allow_insecure_http=False
        )
    assert "hunter2" not in str(info.value)


def test_metadata_urls() -> None:
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/oauth-authorization-server",
        "https://as.example/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://as.example/tenant/1") == [
        "https://as.example/.well-known/oauth-authorization-server/tenant/1",
        "https://as.example/tenant/1/.well-known/openid-configuration",
    ]
