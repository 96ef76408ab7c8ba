"""The server's settings have their own prefix: no client variable changes how it starts."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import pytest

from authkestra.cli import Environment, main
from authkestra.flow.environment import CLIENT_VARIABLES
from authkestra.server.settings import (
    COLLIDING_LEGACY_NAMES,
    ENV_PREFIX,
    LEGACY_PREFIX,
    ServerSettings,
)
from tests.support.authkestra_server import AuthkestraServer
from tests.support.stores import made_store

#: A client's whole configuration, as a service that also runs the server might have it.
CLIENT_ENVIRONMENT = {
    "AUTHKESTRA_CLIENT_ID": "billing-service",
    "AUTHKESTRA_CLIENT_SECRET": "s3cret-value-0123456789",
    "AUTHKESTRA_ISSUER": "https://login.elsewhere.example",
    "AUTHKESTRA_SIGNING_ALG": "PS256",
    "AUTHKESTRA_AUTH_METHOD": "private_key_jwt",
    "AUTHKESTRA_SCOPES": "read write",
    "AUTHKESTRA_DPOP": "true",
}


def test_client_variables_change_nothing() -> None:
    settings = ServerSettings.from_environment(CLIENT_ENVIRONMENT)
    assert settings == ServerSettings.from_environment({})
    assert settings.issuer is None and settings.signing_alg == "ES256"


def test_the_old_names_that_collide_are_exactly_the_shared_ones() -> None:
    server_names = {name.upper() for name in ServerSettings.model_fields}
    shared = server_names & set(CLIENT_VARIABLES)
    assert {name.upper() for name in COLLIDING_LEGACY_NAMES} == shared


def test_server_variables_are_read() -> None:
    settings = ServerSettings.from_environment(
        {"AUTHKESTRA_SERVER_SIGNING_ALG": "EdDSA", "AUTHKESTRA_SERVER_PORT": "9001", "X": "y"}
    )
    assert (settings.signing_alg, settings.port) == ("EdDSA", 9001)


def test_old_names_are_read_for_one_release_with_a_warning() -> None:
    with pytest.warns(FutureWarning, match="AUTHKESTRA_DB is deprecated.*AUTHKESTRA_SERVER_DB"):
        settings = ServerSettings.from_environment({"AUTHKESTRA_DB": "sqlite:///old.db"})
    assert settings.db == "sqlite:///old.db"


def test_the_new_name_wins_and_the_old_one_is_then_not_mentioned(
    recwarn: pytest.WarningsRecorder,
) -> None:
    settings = ServerSettings.from_environment(
        {"AUTHKESTRA_DB": "sqlite:///old.db", "AUTHKESTRA_SERVER_DB": "sqlite:///new.db"}
    )
    assert settings.db == "sqlite:///new.db"
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def test_flags_win_over_the_environment() -> None:
    settings = ServerSettings.from_environment({"AUTHKESTRA_SERVER_PORT": "9001"}, port=9002)
    assert settings.port == 9002
    assert (
        ServerSettings.from_environment({"AUTHKESTRA_SERVER_PORT": "9001"}, port=None).port == 9001
    )


def test_workers_get_the_new_names_only() -> None:
    env = ServerSettings(port=9003).to_environment()
    assert env and all(name.startswith(ENV_PREFIX) for name in env)
    assert not any(
        name.startswith(LEGACY_PREFIX) and not name.startswith(ENV_PREFIX) for name in env
    )


def test_the_cli_says_which_old_name_to_replace(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    environ = {"AUTHKESTRA_DB": made_store(tmp_path / "a.db"), **CLIENT_ENVIRONMENT}
    code = main(["clients", "list"], Environment(environ=environ, stdout=out, stderr=err))
    assert code == 0, err.getvalue()
    assert "authkestra: warning: AUTHKESTRA_DB is deprecated" in err.getvalue()
    assert "AUTHKESTRA_SERVER_DB" in err.getvalue()
    assert (tmp_path / "a.db").exists()


def test_serve_starts_as_configured_whatever_the_client_variables_say() -> None:
    server = AuthkestraServer(extra_env=CLIENT_ENVIRONMENT)
    try:
        metadata = httpx.get(f"{server.issuer}/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == server.issuer  # not AUTHKESTRA_ISSUER
        assert metadata["access_token_signing_alg_values_supported"] == ["ES256"]
    finally:
        server.stop()


def test_the_demo_runs_whatever_the_client_variables_say(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CLIENT_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    code = main(["demo"], Environment(environ=dict(os.environ), stdout=out, stderr=io.StringIO()))
    assert code == 0, out.getvalue()
    assert "Demo complete." in out.getvalue()


def test_the_list_of_client_variables_is_complete() -> None:
    import re

    import authkestra

    src = Path(authkestra.__file__).parent
    environment = (src / "flow" / "environment.py").read_text(encoding="utf-8")
    token = (src / "cli" / "token.py").read_text(encoding="utf-8")
    read = (
        set(re.findall(r'_get\(env, "([A-Z_]+)"\)', environment))
        | set(re.findall(r'\("([A-Z_]+)", "[a-z_]+"\)', environment))
        | set(re.findall(r'ENV_PREFIX \+ "([A-Z_]+)"', token))
    )
    assert {"CLIENT_ID", "SIGNING_ALG", "TOKEN_CACHE", "DPOP_KEY_FILE"} <= read
    assert read <= set(CLIENT_VARIABLES)
