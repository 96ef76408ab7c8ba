"""RFC 6749 §2.3.1: client id and secret are form-encoded, then Basic-encoded, as UTF-8."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl, unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authkestra import AuthMethod, ConfigError
from authkestra._protocol.client_auth import basic_credentials, decode_basic_credentials
from authkestra._protocol.token_request import TokenRequestSpec, build_token_request

# Any text a client id or secret could hold, surrogates excluded (not encodable as UTF-8).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64)


def _userpass(header: str) -> tuple[str, str]:
    raw = base64.b64decode(header.removeprefix("Basic ")).decode("utf-8")
    user, _, password = raw.partition(":")
    return user, password


@given(client_id=TEXT, secret=TEXT)
def test_form_encoded_basic_round_trips(client_id: str, secret: str) -> None:
    header = basic_credentials(client_id, secret)
    user, password = _userpass(header)
    # Form-encoding leaves no ':' behind, so the split is unambiguous.
    assert ":" not in user
    assert unquote_plus(user) == client_id
    assert unquote_plus(password) == secret
    assert decode_basic_credentials(header) == (client_id, secret)


@given(client_id=TEXT.filter(lambda s: ":" not in s), secret=TEXT)
def test_raw_basic_round_trips(client_id: str, secret: str) -> None:
    header = basic_credentials(client_id, secret, form_encode=False)
    assert decode_basic_credentials(header, form_encoded=False) == (client_id, secret)


@pytest.mark.parametrize(
    ("secret", "encoded"),
    [
        ("a:b", "a%3Ab"),
        ("a+b", "a%2Bb"),
        ("a%b", "a%25b"),
        ("a b", "a+b"),
        ("é", "%C3%A9"),
        ("a/b=c&d", "a%2Fb%3Dc%26d"),
    ],
)
def test_known_encodings(secret: str, encoded: str) -> None:
    assert _userpass(basic_credentials("id", secret)) == ("id", encoded)


def test_raw_mode_refuses_colon_in_client_id() -> None:
    with pytest.raises(ConfigError, match="':'"):
        basic_credentials("a:b", "secret", form_encode=False)


@pytest.mark.parametrize(
    "bad", ["Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()]
)
def test_decode_rejects_bad_headers(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_basic_credentials(bad)


def _request(
    method: AuthMethod, secret: str | None = "s3cret"
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    spec = TokenRequestSpec(client_id="svc", auth_method=method, scopes=("read", "write"))
    request = build_token_request(
        spec, "https://as.example/token", secret, deadline=0, max_body=1024, user_agent="t"
    )
    assert request.body is not None
    return dict(request.headers), parse_qsl(request.body.decode(), strict_parsing=True)


def test_basic_sends_the_secret_only_in_the_header() -> None:
    headers, fields = _request(AuthMethod.CLIENT_SECRET_BASIC)
    assert headers["Authorization"].startswith("Basic ")
    assert dict(fields) == {"grant_type": "client_credentials", "scope": "read write"}


def test_post_sends_the_secret_only_in_the_body() -> None:
    headers, fields = _request(AuthMethod.CLIENT_SECRET_POST)
    assert "Authorization" not in headers
    assert ("client_id", "svc") in fields and ("client_secret", "s3cret") in fields


def test_none_sends_only_the_client_id() -> None:
    headers, fields = _request(AuthMethod.NONE, None)
    assert "Authorization" not in headers
    assert dict(fields) == {
        "grant_type": "client_credentials",
        "scope": "read write",
        "client_id": "svc",
    }


def test_request_headers_and_repeated_resource() -> None:
    spec = TokenRequestSpec(
        client_id="svc",
        resources=("https://a.example/", "https://b.example/"),
        audience="api",
        extra_params=(("tenant", "t1"),),
    )
    request = build_token_request(
        spec, "https://as.example/token", "s", deadline=0, max_body=1, user_agent="t"
    )
    headers = dict(request.headers)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Accept"] == "application/json"
    assert request.body is not None
    fields = parse_qsl(request.body.decode())
    assert [v for k, v in fields if k == "resource"] == ["https://a.example/", "https://b.example/"]
    assert ("audience", "api") in fields and ("tenant", "t1") in fields
    assert "s3cret" not in repr(request)


def test_auth_method_parse() -> None:
    assert AuthMethod.parse("client_secret_post") is AuthMethod.CLIENT_SECRET_POST
    with pytest.raises(ConfigError, match="client_secret_basic"):
        AuthMethod.parse("private_key_jwt_typo")
