"""Secrets and tokens never show themselves."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from authkestra import ConfigError, EnvSecret, FileSecret, Secret, Token
from authkestra.secrets import CallableSecret, StaticSecret, to_secret_source


def test_secret_is_masked() -> None:
    secret = Secret("hunter2-hunter2")
    for text in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"s": secret})):
        assert "hunter2" not in text
    assert secret.get_secret_value() == "hunter2-hunter2"
    assert secret == Secret("hunter2-hunter2") and secret != Secret("other")
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_sources() -> None:
    assert isinstance(to_secret_source("x"), StaticSecret)
    assert isinstance(to_secret_source(Secret("x")), StaticSecret)
    assert isinstance(to_secret_source(lambda: "x"), CallableSecret)
    assert to_secret_source(None) is None
    with pytest.raises(ConfigError):
        to_secret_source(42)  # type: ignore[arg-type]
    assert not StaticSecret("x").rotating and EnvSecret("X").rotating


def test_async_callable_detected() -> None:
    async def fetch() -> str:
        return "x"

    class Fetcher:
        async def __call__(self) -> str:
            return "x"

    assert CallableSecret(fetch).is_async
    assert CallableSecret(Fetcher()).is_async
    assert not CallableSecret(lambda: "x").is_async


def test_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET", "from-env")
    assert EnvSecret("MY_SECRET").read().get_secret_value() == "from-env"
    monkeypatch.delenv("MY_SECRET")
    with pytest.raises(ConfigError, match="MY_SECRET"):
        EnvSecret("MY_SECRET").read()


def test_file_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("  spaced secret \n")
    assert FileSecret(path).read().get_secret_value() == "  spaced secret "
    path.write_bytes(b"crlf\r\n")
    assert FileSecret(path).read().get_secret_value() == "crlf"
    path.write_text("rotated")
    assert FileSecret(path).read().get_secret_value() == "rotated"
    for content in (b"", b"\n", b"\xff\xfe"):
        path.write_bytes(content)
        with pytest.raises(ConfigError):
            FileSecret(path).read()
    with pytest.raises(ConfigError, match="missing"):
        FileSecret(tmp_path / "missing").read()
    assert "rotated" not in repr(FileSecret(path))


def test_token_repr_hides_the_access_token() -> None:
    token = Token("eyJhbGciOi.secret-part.sig", expires_in=60, scope="read write")
    for text in (repr(token), str(token), f"{token}", repr([token])):
        assert "secret-part" not in text and "eyJ" not in text
    assert "26 chars" in repr(token)


def test_token_properties() -> None:
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    token = Token("abc", expires_in=60, expires_at=when, scope="read write", raw={"x": 1})
    assert token.scopes == ("read", "write")
    assert token.authorization == "Bearer abc"
    assert token.is_expired(now=when)
    assert not token.is_expired(now=when - timedelta(seconds=61))
    assert token.is_expired(leeway=30, now=when - timedelta(seconds=20))
    assert not Token("abc").is_expired()
    assert token == Token("abc", expires_in=60, expires_at=when, scope="read write")
    with pytest.raises(TypeError):
        hash(token)
