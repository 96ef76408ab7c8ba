"""Parsing token endpoint answers: lenient where servers differ, strict where safety needs it."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authkestra import (
    AuthError,
    InvalidClient,
    InvalidScope,
    MalformedResponse,
    OAuthError,
    ProviderError,
    RateLimited,
)
from authkestra._protocol.actions import HttpResponse
from authkestra._protocol.redact import Redactor
from authkestra._protocol.responses import parse_token_response

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
SECRET = "the-client-secret-42"


def parse(
    body: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    scopes: tuple[str, ...] = ("read",),
):  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    redact = Redactor([SECRET])
    return parse_token_response(
        HttpResponse(status, headers or {}, raw),
        requested_scopes=scopes,
        received_at=NOW,
        redact=redact,
    )


def test_minimal() -> None:
    token = parse({"access_token": "abc", "token_type": "Bearer", "expires_in": 60})
    assert token.access_token == "abc"
    assert token.expires_in == 60
    assert token.expires_at == NOW + timedelta(seconds=60)
    assert token.scope == "read"  # not in the answer: the requested scope
    assert token.scopes == ("read",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(60, 60), (60.9, 60), ("60", 60), (" 60 ", 60), ("60.5", 60), (0, 0), (None, None)],
)
def test_expires_in_variants(value: object, expected: int | None) -> None:
    token = parse({"access_token": "abc", "token_type": "bearer", "expires_in": value})
    assert token.expires_in == expected
    assert (token.expires_at is None) == (expected is None)


def test_expires_in_missing() -> None:
    token = parse({"access_token": "abc", "token_type": "BEARER"})
    assert token.expires_in is None and token.expires_at is None
    assert token.token_type == "Bearer"


def test_token_type_missing_is_bearer() -> None:
    assert parse({"access_token": "abc"}).token_type == "Bearer"


def test_scope_forms() -> None:
    assert parse({"access_token": "a", "token_type": "Bearer", "scope": "write  read"}).scopes == (
        "write",
        "read",
    )
    assert parse({"access_token": "a", "token_type": "Bearer", "scope": ["a", "b"]}).scope == "a b"
    assert parse({"access_token": "a", "token_type": "Bearer", "scope": ""}).scope is None
    assert parse({"access_token": "a", "token_type": "Bearer"}, scopes=()).scope is None


def test_raw_keeps_other_fields_but_no_credentials() -> None:
    token = parse(
        {
            "access_token": "a",
            "token_type": "Bearer",
            "refresh_token": "r",
            "issued_token_type": "x",
            "n": 1,
        }
    )
    assert dict(token.raw) == {"token_type": "Bearer", "issued_token_type": "x", "n": 1}
    with pytest.raises(TypeError):
        token.raw["n"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "Bearer"},
        {"access_token": "", "token_type": "Bearer"},
        {"access_token": None, "token_type": "Bearer"},
        {"access_token": 12345, "token_type": "Bearer"},
        {"access_token": "a b", "token_type": "Bearer"},
        {"access_token": "a\r\nX-Injected: 1", "token_type": "Bearer"},
        {"access_token": "t\u00e9", "token_type": "Bearer"},
        {"access_token": "a", "token_type": "mac"},
        {"access_token": "a", "token_type": "DPoP"},
        {"access_token": "a", "token_type": 1},
        {"access_token": "a", "token_type": "Bearer", "expires_in": -1},
        {"access_token": "a", "token_type": "Bearer", "expires_in": "-5"},
        {"access_token": "a", "token_type": "Bearer", "expires_in": "soon"},
        {"access_token": "a", "token_type": "Bearer", "expires_in": "1e3"},
        {"access_token": "a", "token_type": "Bearer", "expires_in": True},
        {"access_token": "a", "token_type": "Bearer", "expires_in": [60]},
        {"access_token": "a", "token_type": "Bearer", "expires_in": 1e300},
        {"access_token": "a", "token_type": "Bearer", "scope": 7},
        [],
        "access_token",
        None,
        42,
    ],
)
def test_malformed(body: Any) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse(body)
    assert info.value.status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"<html>ok</html>",
        b'{"access_token": "a", "token_type": "Bearer"',
        b'{"access_token": "a", "token_type": "Bearer", "expires_in": NaN}',
        b'{"access_token": "a", "token_type": "Bearer", "expires_in": Infinity}',
        b'{"access_token": "a", "access_token": "b", "token_type": "Bearer"}',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    ],
)
def test_malformed_bytes(raw: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse(raw)


def test_truncated_body_is_malformed() -> None:
    response = HttpResponse(200, {}, b'{"access_token": "a"', truncated=True)
    with pytest.raises(MalformedResponse, match="size limit"):
        parse_token_response(response, requested_scopes=(), received_at=NOW, redact=Redactor())


def test_error_with_200_status() -> None:
    with pytest.raises(InvalidClient) as info:
        parse({"error": "invalid_client", "error_description": "bad"}, status=200)
    assert info.value.status_code == 200
    assert info.value.error_description == "bad"


def test_error_mapping_and_fields() -> None:
    with pytest.raises(InvalidScope) as info:
        parse(
            {
                "error": "invalid_scope",
                "error_description": "no\nadmin\x1b[31m",
                "error_uri": "https://e/x",
            },
            status=400,
        )
    err = info.value
    assert (err.error, err.status_code, err.error_uri) == ("invalid_scope", 400, "https://e/x")
    # Control characters (newlines, terminal escapes) cannot reach a log line.
    assert err.error_description == "no admin [31m"


def test_unknown_error_code_keeps_its_code() -> None:
    with pytest.raises(OAuthError) as info:
        parse({"error": "server_error"}, status=500)
    assert type(info.value) is OAuthError
    assert info.value.error == "server_error"


def test_invalid_error_member() -> None:
    with pytest.raises(MalformedResponse):
        parse({"error": 5}, status=400)
    with pytest.raises(MalformedResponse):
        parse({"error": 'bad"quote'}, status=400)


def test_html_gateway_page_gives_excerpt() -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body></html>"
    )
    with pytest.raises(ProviderError) as info:
        parse(page, status=502)
    assert type(info.value) is ProviderError
    assert info.value.status_code == 502
    assert "502 Bad Gateway" in str(info.value)
    assert len(str(info.value)) < 300


def test_rate_limited() -> None:
    with pytest.raises(RateLimited) as info:
        parse({"error": "slow_down"}, status=429, headers={"retry-after": "7"})
    assert info.value.retry_after == 7.0
    with pytest.raises(RateLimited) as info:
        parse(b"Too Many Requests", status=429)
    assert info.value.retry_after is None


def test_redirect_is_not_followed() -> None:
    with pytest.raises(ProviderError, match="redirect"):
        parse(b"", status=302, headers={"location": "https://evil.example/token"})


def test_4xx_json_without_error_code() -> None:
    with pytest.raises(ProviderError, match="without an OAuth error code"):
        parse({"message": "nope"}, status=403)


def test_server_text_is_redacted() -> None:
    with pytest.raises(InvalidClient) as info:
        parse(
            {"error": "invalid_client", "error_description": f"secret {SECRET} is wrong"},
            status=401,
        )
    assert SECRET not in str(info.value)
    assert SECRET not in (info.value.error_description or "")
    with pytest.raises(ProviderError) as info2:
        parse(f"<html>you sent {SECRET}</html>".encode(), status=500)
    assert SECRET not in str(info2.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "access_token": JSON | st.text(max_size=30),
        "token_type": JSON | st.sampled_from(["Bearer", "bearer", "mac", ""]),
        "expires_in": JSON | st.sampled_from(["60", "-1", "1.5", "x"]),
        "scope": JSON,
        "error": JSON | st.sampled_from(["invalid_client", "server_error"]),
        "error_description": JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(body=FIELDS, status=st.sampled_from([200, 201, 400, 401, 403, 404, 429, 500, 502, 503]))
def test_any_json_gives_token_or_typed_error(body: dict[str, Any], status: int) -> None:
    try:
        token = parse(body, status=status)
    except AuthError:
        return
    assert 200 <= status <= 299
    assert isinstance(token.access_token, str) and token.access_token
    assert token.token_type == "Bearer"
    assert token.expires_in is None or token.expires_in >= 0


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300), status=st.integers(100, 599))
def test_any_bytes_give_token_or_typed_error(raw: bytes, status: int) -> None:
    with contextlib.suppress(AuthError):  # a typed error is fine; anything else fails the test
        parse(raw, status=status)
