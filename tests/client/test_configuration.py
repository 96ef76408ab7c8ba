"""Misconfiguration is a ConfigError that says what to fix, before any request is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from authkestra import AuthMethod, ClientCredentialsFlow, ConfigError, FileSecret, Secret

URL = "https://as.example/token"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_id": "", "client_secret": "s", "token_url": URL}, "client_id"),
        ({"client_id": "a\nb", "client_secret": "s", "token_url": URL}, "control"),
        ({"client_id": "svc", "token_url": URL}, "client_secret is required"),
        (
            {"client_id": "svc", "client_secret": "s", "token_url": URL, "auth_method": "none"},
            "sends no secret",
        ),
        (
            {"client_id": "svc", "client_secret": "s"},
            "exactly one of token_url, issuer and protected_resource",
        ),
        (
            {
                "client_id": "svc",
                "client_secret": "s",
                "token_url": URL,
                "issuer": "https://as.example",
            },
            "exactly one",
        ),
        (
            {"client_id": "svc", "client_secret": "s", "token_url": "http://as.example/token"},
            "allow_insecure_http",
        ),
        (
            {"client_id": "svc", "client_secret": "s", "issuer": "http://as.example"},
            "allow_insecure_http",
        ),
        ({"client_id": "svc", "client_secret": "s", "issuer": "https://as.example?x=1"}, "query"),
        (
            {
                "client_id": "svc",
                "client_secret": "s",
                "token_url": URL,
                "auth_method": "tls_client_auth_typo",
            },
            "auth_method",
        ),
        ({"client_id": "svc", "client_secret": "s", "token_url": URL, "scopes": 'a"b'}, "scope"),
        (
            {
                "client_id": "svc",
                "client_secret": "s",
                "token_url": URL,
                "extra_params": {"scope": "x"},
            },
            "scope",
        ),
        ({"client_id": "svc", "client_secret": "s", "token_url": URL, "audience": ""}, "audience"),
        ({"client_id": "svc", "client_secret": 3, "token_url": URL}, "client_secret"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClientCredentialsFlow(**kwargs)  # type: ignore[arg-type]


def test_insecure_http_is_allowed_when_asked() -> None:
    flow = ClientCredentialsFlow("svc", "s", "http://as.internal/token", allow_insecure_http=True)
    assert flow.token_url == "http://as.internal/token"


def test_public_client() -> None:
    flow = ClientCredentialsFlow("svc", token_url=URL, auth_method="none")
    assert flow.auth_method is AuthMethod.NONE


def test_repr_hides_the_secret() -> None:
    flow = ClientCredentialsFlow("svc", "hunter2-hunter2", URL)
    assert "hunter2" not in repr(flow)
    assert "svc" in repr(flow)


ENV = {
    "AUTHKESTRA_CLIENT_ID": "svc",
    "AUTHKESTRA_CLIENT_SECRET": "from-env-secret",
    "AUTHKESTRA_TOKEN_URL": URL,
}


def test_from_env() -> None:
    flow = ClientCredentialsFlow.from_env(
        {
            **ENV,
            "AUTHKESTRA_SCOPES": "read  write",
            "AUTHKESTRA_AUTH_METHOD": "client_secret_post",
            "AUTHKESTRA_AUDIENCE": "api",
            "AUTHKESTRA_RESOURCE": "https://r1/ https://r2/",
        }
    )
    assert flow.client_id == "svc"
    assert flow.scopes == ("read", "write")
    assert flow.auth_method is AuthMethod.CLIENT_SECRET_POST
    assert flow.audience == "api"
    assert flow.resources == ("https://r1/", "https://r2/")
    assert "from-env-secret" not in repr(flow)


def test_from_env_issuer_and_overrides() -> None:
    env = {k: v for k, v in ENV.items() if k != "AUTHKESTRA_TOKEN_URL"}
    flow = ClientCredentialsFlow.from_env(
        {**env, "AUTHKESTRA_ISSUER": "https://as.example"}, scopes=["admin"]
    )
    assert flow.issuer == "https://as.example" and flow.scopes == ("admin",)


def test_from_env_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("file-secret\n")
    env = {k: v for k, v in ENV.items() if k != "AUTHKESTRA_CLIENT_SECRET"}
    flow = ClientCredentialsFlow.from_env({**env, "AUTHKESTRA_CLIENT_SECRET_FILE": str(path)})
    assert isinstance(flow._secret_source, FileSecret)


@pytest.mark.parametrize(
    ("drop", "add", "names"),
    [
        ("AUTHKESTRA_CLIENT_ID", {}, "AUTHKESTRA_CLIENT_ID"),
        ("AUTHKESTRA_CLIENT_SECRET", {}, "AUTHKESTRA_CLIENT_SECRET"),
        ("AUTHKESTRA_TOKEN_URL", {}, "AUTHKESTRA_TOKEN_URL"),
        (None, {"AUTHKESTRA_ISSUER": "https://as.example"}, "AUTHKESTRA_ISSUER"),
        (None, {"AUTHKESTRA_CLIENT_SECRET_FILE": "/nonexistent"}, "AUTHKESTRA_CLIENT_SECRET_FILE"),
        (
            "AUTHKESTRA_CLIENT_SECRET",
            {"AUTHKESTRA_CLIENT_SECRET_FILE": "/nonexistent/x"},
            "/nonexistent/x",
        ),
    ],
)
def test_from_env_names_the_variable(drop: str | None, add: dict[str, str], names: str) -> None:
    env = {k: v for k, v in ENV.items() if k != drop}
    env.update(add)
    with pytest.raises(ConfigError, match=names) as info:
        ClientCredentialsFlow.from_env(env)
    assert "from-env-secret" not in str(info.value)


def test_from_env_public_client() -> None:
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc",
        "AUTHKESTRA_TOKEN_URL": URL,
        "AUTHKESTRA_AUTH_METHOD": "none",
    }
    assert ClientCredentialsFlow.from_env(env).auth_method is AuthMethod.NONE


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert ClientCredentialsFlow.from_env().client_id == "svc"


def test_secret_object_accepted() -> None:
    assert ClientCredentialsFlow("svc", Secret("s"), URL).client_id == "svc"
