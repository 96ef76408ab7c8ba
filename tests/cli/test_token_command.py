"""``authkestra token`` against npm oidc-provider and the hostile server.

Most tests run the command in-process with Typer's ``CliRunner``; two run the
installed console script, as a shell would.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from typer.testing import CliRunner, Result

from authkestra import AuthError, ClientCredentialsFlow, InvalidClient, RetryPolicy, Token
from authkestra.cli import Environment, app, main
from authkestra.cli.exit_codes import EXIT_CODES, ExitCode, exit_code_for
from authkestra.errors import (
    ConfigError,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    MalformedResponse,
    NetworkError,
    OAuthError,
    ProviderError,
    RateLimited,
)
from authkestra.flow.environment import CLIENT_VARIABLES
from tests.support.hostile_server import HostileServer, Reply
from tests.support.oidc_provider import OidcProvider
from tests.support.token_server import TokenServer

BASIC_SECRET = "basic-secret-0123456789"
POST_SECRET = "post-secret-0123456789"
READONLY_SECRET = "readonly-secret-0123456789"
WRONG_SECRET = "not-the-secret-0123456789"
ARGV_SECRET = "argv-secret-do-not-echo-0123456789"
#: Every secret a test hands the command: none may ever be printed.
SECRETS = (BASIC_SECRET, POST_SECRET, READONLY_SECRET, WRONG_SECRET, ARGV_SECRET)

ENV_NAMES = CLIENT_VARIABLES
#: Unset whatever AUTHKESTRA_* the surrounding shell has, so only the test's own count.
CLEAN_ENV: dict[str, str | None] = {f"AUTHKESTRA_{name}": None for name in ENV_NAMES}


def run(args: list[str], env: Mapping[str, str] | None = None, stdin: str | None = None) -> Result:
    """``authkestra token ARGS`` in-process, with exactly ``env`` as AUTHKESTRA_* settings."""
    result = CliRunner().invoke(
        app,
        ["token", *args],
        env={**CLEAN_ENV, **(env or {})},
        input=stdin,
        prog_name="authkestra",
        catch_exceptions=False,
    )
    assert_no_secret(result.stdout, result.stderr)
    assert "Traceback" not in result.output
    return result


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output
            assert base64.b64encode(secret.encode()).decode() not in output


def basic_env(provider: OidcProvider, **more: str) -> dict[str, str]:
    """The environment of the svc-basic client, plus ``more`` (CLIENT_ID=... style)."""
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc-basic",
        "AUTHKESTRA_CLIENT_SECRET": BASIC_SECRET,
        "AUTHKESTRA_TOKEN_URL": provider.token_url,
    }
    env.update({f"AUTHKESTRA_{name}": value for name, value in more.items()})
    return env


def hostile_env(server: HostileServer) -> dict[str, str]:
    return {
        "AUTHKESTRA_CLIENT_ID": "svc-basic",
        "AUTHKESTRA_CLIENT_SECRET": BASIC_SECRET,
        "AUTHKESTRA_TOKEN_URL": f"{server.url}/token",
    }


def assert_failure(result: Result, code: ExitCode, *fragments: str) -> list[str]:
    """The run failed with ``code``: nothing on stdout, one error line (and a hint) on stderr."""
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("authkestra: error: ")
    if len(lines) == 2:
        assert lines[1].startswith("authkestra: hint: ")
    for fragment in fragments:
        assert fragment in result.stderr
    return lines


def jwt_payload(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening, for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- output formats --------------------------------------------------------------------


def test_raw_prints_the_token_alone(oidc_provider: OidcProvider) -> None:
    result = run(["--scope", "read"], basic_env(oidc_provider))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.endswith("\n")
    token = result.stdout[:-1]
    assert token and not any(ch.isspace() for ch in token)


def test_raw_is_the_default_and_can_be_named(oidc_provider: OidcProvider) -> None:
    result = run(["--format", "raw"], basic_env(oidc_provider))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1


def test_json(oidc_provider: OidcProvider) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    result = run(["--format", "json", "--scope", "read write"], basic_env(oidc_provider))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"access_token", "token_type", "expires_in", "expires_at", "scope"}
    assert document["access_token"]
    assert document["token_type"] == "Bearer"
    assert document["expires_in"] == 300
    assert document["scope"] == "read write"
    expires_at = datetime.fromisoformat(document["expires_at"])
    assert expires_at.utcoffset() == timedelta(0)
    assert expires_at >= before + timedelta(seconds=299)


def test_json_without_scope_or_expiry(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(body='{"access_token": "opaque-abc", "token_type": "bearer"}'))
    result = run(["--format", "json"], hostile_env(hostile))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "access_token": "opaque-abc",
        "token_type": "Bearer",
        "expires_in": None,
        "expires_at": None,
        "scope": None,
    }


def test_header(oidc_provider: OidcProvider) -> None:
    result = run(["--format", "header"], basic_env(oidc_provider))
    assert result.exit_code == 0, result.output
    prefix = "Authorization: Bearer "
    assert result.stdout.startswith(prefix)
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1
    assert len(result.stdout) > len(prefix) + 1


def test_unknown_format_is_a_usage_error(oidc_provider: OidcProvider) -> None:
    result = run(["--format", "xml"], basic_env(oidc_provider))
    assert result.exit_code == ExitCode.USAGE
    assert "--format" in result.stderr


# -- settings: environment and options -------------------------------------------------


def test_env_scopes_are_used(oidc_provider: OidcProvider) -> None:
    result = run(["--format", "json"], basic_env(oidc_provider, SCOPES="write"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scope"] == "write"


def test_scope_repeats_and_splits_on_spaces(oidc_provider: OidcProvider) -> None:
    env = basic_env(oidc_provider, SCOPES="write")
    result = run(["--format", "json", "--scope", "read", "--scope", "write"], env)
    assert json.loads(result.stdout)["scope"] == "read write"
    result = run(["--format", "json", "--scope", "read write"], env)
    assert json.loads(result.stdout)["scope"] == "read write"
    result = run(["--format", "json", "--scope", "read"], env)
    assert json.loads(result.stdout)["scope"] == "read"


def test_options_override_the_environment(oidc_provider: OidcProvider, closed_port: int) -> None:
    env = basic_env(
        oidc_provider,
        CLIENT_ID="svc-nobody",
        TOKEN_URL=f"http://127.0.0.1:{closed_port}/token",
        AUTH_METHOD="client_secret_post",
    )
    args = ["--client-id", "svc-basic", "--token-url", oidc_provider.token_url]
    result = run([*args, "--auth-method", "client_secret_basic"], env)
    assert result.exit_code == 0, result.output


def test_issuer_discovery(oidc_provider: OidcProvider) -> None:
    env = basic_env(oidc_provider)
    del env["AUTHKESTRA_TOKEN_URL"]
    result = run(["--issuer", oidc_provider.issuer], env)
    assert result.exit_code == 0, result.output
    result = run([], {**env, "AUTHKESTRA_ISSUER": oidc_provider.issuer})
    assert result.exit_code == 0, result.output


def test_client_secret_post_from_option_and_env(oidc_provider: OidcProvider) -> None:
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc-post",
        "AUTHKESTRA_CLIENT_SECRET": POST_SECRET,
        "AUTHKESTRA_TOKEN_URL": oidc_provider.token_url,
    }
    assert run(["--auth-method", "client_secret_post"], env).exit_code == 0
    result = run([], {**env, "AUTHKESTRA_AUTH_METHOD": "client_secret_post"})
    assert result.exit_code == 0, result.output


def test_resource_gives_a_token_for_that_audience(oidc_provider: OidcProvider) -> None:
    result = run(
        ["--scope", "read", "--resource", "https://api.example.test/"], basic_env(oidc_provider)
    )
    assert result.exit_code == 0, result.output
    payload = jwt_payload(result.stdout.strip())
    assert payload["aud"] == "https://api.example.test/"
    assert payload["client_id"] == "svc-basic"


def test_resource_from_env(oidc_provider: OidcProvider) -> None:
    env = basic_env(oidc_provider, RESOURCE="https://api.example.test/")
    result = run(["--scope", "read"], env)
    assert result.exit_code == 0, result.output
    assert jwt_payload(result.stdout.strip())["aud"] == "https://api.example.test/"


def test_audience_is_sent(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(body='{"access_token": "abc", "token_type": "Bearer"}'))
    result = run(["--audience", "https://api.example.test"], hostile_env(hostile))
    assert result.exit_code == 0, result.output
    assert b"audience=https%3A%2F%2Fapi.example.test" in hostile.received[0].body


# -- the client secret -----------------------------------------------------------------


def test_secret_from_env(oidc_provider: OidcProvider) -> None:
    assert run([], basic_env(oidc_provider)).exit_code == 0


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_secret_from_file_option(oidc_provider: OidcProvider, tmp_path: Path, ending: str) -> None:
    path = tmp_path / "secret"
    path.write_bytes((BASIC_SECRET + ending).encode())
    env = basic_env(oidc_provider, CLIENT_SECRET=WRONG_SECRET)  # the option wins
    result = run(["--client-secret-file", str(path)], env)
    assert result.exit_code == 0, result.output


def test_secret_from_file_env(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(BASIC_SECRET + "\n")
    env = basic_env(oidc_provider)
    del env["AUTHKESTRA_CLIENT_SECRET"]
    result = run([], {**env, "AUTHKESTRA_CLIENT_SECRET_FILE": str(path)})
    assert result.exit_code == 0, result.output


def test_missing_secret_file(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    result = run(["--client-secret-file", missing], basic_env(oidc_provider))
    assert_failure(result, ExitCode.CONFIG, missing)


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_secret_from_stdin(oidc_provider: OidcProvider, ending: str) -> None:
    env = basic_env(oidc_provider, CLIENT_SECRET=WRONG_SECRET)  # the option wins
    result = run(["--client-secret-stdin"], env, stdin=BASIC_SECRET + ending)
    assert result.exit_code == 0, result.output


def test_stdin_loses_one_line_break_only(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(body='{"access_token": "abc", "token_type": "Bearer"}'))
    result = run(["--client-secret-stdin"], hostile_env(hostile), stdin=BASIC_SECRET + "\n\n")
    assert result.exit_code == 0, result.output
    credentials = hostile.received[0].headers["authorization"].removeprefix("Basic ")
    sent = base64.b64decode(credentials).decode().partition(":")[2]
    assert unquote_plus(sent) == BASIC_SECRET + "\n"


def test_empty_stdin(oidc_provider: OidcProvider) -> None:
    result = run(["--client-secret-stdin"], basic_env(oidc_provider), stdin="\n")
    assert_failure(result, ExitCode.CONFIG, "--client-secret-stdin")


def test_secret_typed_at_a_terminal_is_not_echoed(
    oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []

    def fake_getpass(prompt: str, stream: object = None) -> str:
        prompts.append(prompt)
        return BASIC_SECRET

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    out, err = io.StringIO(), io.StringIO()
    env = basic_env(oidc_provider)
    del env["AUTHKESTRA_CLIENT_SECRET"]
    environment = Environment(environ=env, stdin=Terminal(), stdout=out, stderr=err)
    assert main(["token", "--client-secret-stdin"], environment) == 0
    assert prompts == ["client secret: "]
    assert out.getvalue().strip()


@pytest.mark.parametrize(
    "args",
    [
        ["--client-secret", ARGV_SECRET],
        [f"--client-secret={ARGV_SECRET}"],
        ["--client-secret"],
        ["--scope", "read", "--client-secret", ARGV_SECRET, "--format", "json"],
        ["--client-secret", "--help"],
    ],
)
def test_client_secret_option_is_refused(hostile: HostileServer, args: list[str]) -> None:
    result = run(args, hostile_env(hostile))
    assert result.exit_code == ExitCode.USAGE
    assert result.stdout == ""
    assert "--client-secret" in result.stderr
    assert "AUTHKESTRA_CLIENT_SECRET" in result.stderr
    assert "--client-secret-file" in result.stderr
    assert "--client-secret-stdin" in result.stderr
    assert hostile.received == []


def test_both_secret_options_is_a_usage_error(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(BASIC_SECRET)
    args = ["--client-secret-file", str(path), "--client-secret-stdin"]
    result = run(args, basic_env(oidc_provider), stdin=BASIC_SECRET)
    assert result.exit_code == ExitCode.USAGE


# -- configuration errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("AUTHKESTRA_CLIENT_ID", "AUTHKESTRA_CLIENT_ID"),
        ("AUTHKESTRA_CLIENT_SECRET", "AUTHKESTRA_CLIENT_SECRET"),
        ("AUTHKESTRA_TOKEN_URL", "AUTHKESTRA_TOKEN_URL"),
    ],
)
def test_missing_setting_names_the_variable(
    oidc_provider: OidcProvider, missing: str, named: str
) -> None:
    env = basic_env(oidc_provider)
    del env[missing]
    lines = assert_failure(run([], env), ExitCode.CONFIG, named)
    assert len(lines) == 2  # and a hint


def test_conflicting_env_settings(oidc_provider: OidcProvider, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(BASIC_SECRET)
    env = basic_env(oidc_provider, CLIENT_SECRET_FILE=str(path))
    assert_failure(run([], env), ExitCode.CONFIG, "AUTHKESTRA_CLIENT_SECRET_FILE")


def test_token_url_and_issuer_together_is_a_usage_error(oidc_provider: OidcProvider) -> None:
    args = ["--token-url", oidc_provider.token_url, "--issuer", oidc_provider.issuer]
    assert run(args, basic_env(oidc_provider)).exit_code == ExitCode.USAGE


def test_bad_auth_method_in_env(oidc_provider: OidcProvider) -> None:
    env = basic_env(oidc_provider, AUTH_METHOD="private_key_jwt")
    assert_failure(run([], env), ExitCode.CONFIG, "private_key_jwt")


@pytest.mark.parametrize(
    "args", [["--timeout", "0"], ["--timeout", "-1"], ["--retries", "-1"], ["--auth-method", "x"]]
)
def test_bad_option_values_are_usage_errors(oidc_provider: OidcProvider, args: list[str]) -> None:
    assert run(args, basic_env(oidc_provider)).exit_code == ExitCode.USAGE


def test_plain_http_elsewhere_needs_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc-basic",
        "AUTHKESTRA_CLIENT_SECRET": BASIC_SECRET,
        "AUTHKESTRA_TOKEN_URL": "http://auth.example.test/token",
    }
    assert_failure(run([], env), ExitCode.CONFIG, "plain http")
    # The message names the flag a command-line user can give.
    assert "--allow-insecure-http" in run([], env).stderr

    # With the flag the flow is built; stop it before it touches the network.
    def fake_get_token(flow: ClientCredentialsFlow) -> Token:
        assert flow.allow_insecure_http
        return Token("opaque-abc")

    monkeypatch.setattr(ClientCredentialsFlow, "get_token_sync", fake_get_token)
    result = run(["--allow-insecure-http"], env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "opaque-abc\n"


def test_timeout_and_retries_reach_the_flow(
    oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[ClientCredentialsFlow] = []

    def fake_get_token(flow: ClientCredentialsFlow) -> Token:
        seen.append(flow)
        return Token("opaque-abc")

    monkeypatch.setattr(ClientCredentialsFlow, "get_token_sync", fake_get_token)
    assert run(["--timeout", "2.5", "--retries", "0"], basic_env(oidc_provider)).exit_code == 0
    assert run([], basic_env(oidc_provider)).exit_code == 0
    configured, default = seen
    assert configured.retry.max_attempts == 1
    assert configured._timeout.read == 2.5
    assert default.retry.max_attempts == RetryPolicy().max_attempts


# -- failures from the server and the network ------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_secret_is_invalid_client(oidc_provider: OidcProvider, method: str) -> None:
    env = basic_env(oidc_provider, CLIENT_SECRET=WRONG_SECRET)
    result = run(["--auth-method", method], env)
    lines = assert_failure(result, ExitCode.INVALID_CLIENT, "invalid_client")
    assert lines[1] == (
        "authkestra: hint: check the client id and its credential (secret, key or assertion),"
        " and --auth-method"
    )


def test_scope_not_allowed_is_invalid_scope(oidc_provider: OidcProvider) -> None:
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc-readonly",
        "AUTHKESTRA_CLIENT_SECRET": READONLY_SECRET,
        "AUTHKESTRA_TOKEN_URL": oidc_provider.token_url,
    }
    assert run(["--scope", "read"], env).exit_code == 0
    assert_failure(run(["--scope", "read admin"], env), ExitCode.INVALID_SCOPE, "invalid_scope")


def test_unknown_resource_is_invalid_target(oidc_provider: OidcProvider) -> None:
    args = ["--scope", "read", "--resource", "https://elsewhere.example.test/"]
    assert_failure(run(args, basic_env(oidc_provider)), ExitCode.INVALID_SCOPE, "invalid_target")


def test_unreachable_server_is_a_network_error(closed_port: int) -> None:
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc-basic",
        "AUTHKESTRA_CLIENT_SECRET": BASIC_SECRET,
        "AUTHKESTRA_TOKEN_URL": f"http://127.0.0.1:{closed_port}/token",
    }
    lines = assert_failure(run(["--retries", "0"], env), ExitCode.NETWORK)
    assert len(lines) == 2


def test_html_error_page_is_a_provider_error(hostile: HostileServer) -> None:
    hostile.reply_with(
        Reply(status=502, body="<html><body>Bad Gateway</body></html>", content_type="text/html")
    )
    result = run(["--retries", "0"], hostile_env(hostile))
    assert_failure(result, ExitCode.PROVIDER_ERROR, "502")
    assert len(hostile.received) == 1


def test_retries_are_counted(hostile: HostileServer) -> None:
    hostile.reply_with(
        Reply(status=503, body="busy", content_type="text/plain", headers={"Retry-After": "0"})
    )
    assert_failure(run(["--retries", "2"], hostile_env(hostile)), ExitCode.PROVIDER_ERROR)
    assert len(hostile.received) == 3


def test_429_is_rate_limited(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(status=429, body="", headers={"Retry-After": "7"}))
    lines = assert_failure(run(["--retries", "0"], hostile_env(hostile)), ExitCode.RATE_LIMITED)
    assert lines[1] == "authkestra: hint: the server asks to wait 7 s before trying again"


def test_garbage_200_is_malformed(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(status=200, body="{not json at all"))
    assert_failure(run(["--retries", "0"], hostile_env(hostile)), ExitCode.MALFORMED_RESPONSE)


def test_other_oauth_error(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(status=400, body='{"error": "unsupported_grant_type"}'))
    result = run(["--retries", "0"], hostile_env(hostile))
    assert_failure(result, ExitCode.OAUTH_ERROR, "unsupported_grant_type")


def test_server_text_is_one_line(hostile: HostileServer) -> None:
    description = "first line\nauthkestra: hint: forged\x1b[31m"
    hostile.reply_with(
        Reply(
            status=400,
            body=json.dumps({"error": "invalid_request", "error_description": description}),
        )
    )
    lines = assert_failure(run(["--retries", "0"], hostile_env(hostile)), ExitCode.OAUTH_ERROR)
    assert len(lines) == 1
    assert "\x1b" not in lines[0]


def test_secret_echoed_by_a_server_is_masked(hostile: HostileServer) -> None:
    # A careless server quoting the secret back must not get it printed.
    body = {"error": "invalid_client", "error_description": f"secret {BASIC_SECRET} is wrong"}
    hostile.reply_with(Reply(status=401, body=json.dumps(body)))
    assert_failure(run(["--retries", "0"], hostile_env(hostile)), ExitCode.INVALID_CLIENT)


# -- unexpected failures ---------------------------------------------------------------


def test_unexpected_exception_prints_its_type_only(
    oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(flow: ClientCredentialsFlow) -> Token:
        raise RuntimeError(f"internal detail with {BASIC_SECRET}")

    monkeypatch.setattr(ClientCredentialsFlow, "get_token_sync", broken)
    result = run([], basic_env(oidc_provider))
    lines = assert_failure(result, ExitCode.INTERNAL_ERROR, "RuntimeError")
    assert "internal detail" not in result.stderr
    assert len(lines) == 2


def test_unknown_auth_error_subclass(
    oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrandNewError(AuthError):
        pass

    def broken(flow: ClientCredentialsFlow) -> Token:
        raise BrandNewError("a failure this release does not know")

    monkeypatch.setattr(ClientCredentialsFlow, "get_token_sync", broken)
    result = run([], basic_env(oidc_provider))
    assert_failure(result, ExitCode.AUTH_ERROR, "a failure this release does not know")


def test_ctrl_c(oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(flow: ClientCredentialsFlow) -> Token:
        raise KeyboardInterrupt

    monkeypatch.setattr(ClientCredentialsFlow, "get_token_sync", interrupted)
    result = run([], basic_env(oidc_provider))
    assert result.exit_code == ExitCode.INTERRUPTED
    assert result.stdout == ""


# -- the injected environment ----------------------------------------------------------


def test_main_with_an_injected_environment(
    oidc_provider: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process environment would fail; only the injected one may be read.
    monkeypatch.setenv("AUTHKESTRA_CLIENT_ID", "svc-nobody")
    monkeypatch.setenv("AUTHKESTRA_CLIENT_SECRET", WRONG_SECRET)
    out, err = io.StringIO(), io.StringIO()
    environment = Environment(environ=basic_env(oidc_provider), stdout=out, stderr=err)
    assert main(["token", "--format", "header"], environment) == 0
    assert out.getvalue().startswith("Authorization: Bearer ")
    assert err.getvalue() == ""


def test_main_reports_failures_through_the_injected_stderr(closed_port: int) -> None:
    out, err = io.StringIO(), io.StringIO()
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc-basic",
        "AUTHKESTRA_CLIENT_SECRET": BASIC_SECRET,
        "AUTHKESTRA_TOKEN_URL": f"http://127.0.0.1:{closed_port}/token",
    }
    environment = Environment(environ=env, stdout=out, stderr=err)
    assert main(["token", "--retries", "0"], environment) == ExitCode.NETWORK
    assert out.getvalue() == ""
    assert err.getvalue().startswith("authkestra: error: ")


def test_version_and_help() -> None:
    result = CliRunner().invoke(app, ["--version"], prog_name="authkestra")
    assert result.exit_code == 0
    assert result.stdout.startswith("authkestra ")
    result = CliRunner().invoke(app, ["token", "--help"], prog_name="authkestra")
    assert result.exit_code == 0
    assert "--client-secret-stdin" in result.stdout
    assert "--client-secret " not in result.stdout


# -- exit codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ConfigError("x"), ExitCode.CONFIG),
        (NetworkError("x"), ExitCode.NETWORK),
        (InvalidClient("x", status_code=401), ExitCode.INVALID_CLIENT),
        (InvalidScope("x", status_code=400), ExitCode.INVALID_SCOPE),
        (InvalidTarget("x", status_code=400), ExitCode.INVALID_SCOPE),
        (InvalidGrant("x", status_code=400), ExitCode.OAUTH_ERROR),
        (InvalidRequest("x", status_code=400), ExitCode.OAUTH_ERROR),
        (OAuthError("x", status_code=500, error="server_error"), ExitCode.OAUTH_ERROR),
        (RateLimited("x"), ExitCode.RATE_LIMITED),
        (MalformedResponse("x", status_code=200), ExitCode.MALFORMED_RESPONSE),
        (ProviderError("x", status_code=502), ExitCode.PROVIDER_ERROR),
        (AuthError("x"), ExitCode.AUTH_ERROR),
        (ValueError("x"), ExitCode.INTERNAL_ERROR),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (GeneratorExit(), ExitCode.INTERNAL_ERROR),
    ],
)
def test_exit_code_for(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_for(exc) == code


def test_a_new_subclass_takes_its_parents_code() -> None:
    class InvalidClientAssertion(InvalidClient):
        pass

    assert exit_code_for(InvalidClientAssertion("x", status_code=401)) == ExitCode.INVALID_CLIENT


def test_exit_codes_are_distinct_and_fixed() -> None:
    assert len({int(code) for code in ExitCode}) == len(ExitCode)
    assert (ExitCode.OK, ExitCode.USAGE, ExitCode.INTERRUPTED) == (0, 2, 130)
    # Every failure class has a code other than success and usage.
    assert all(code not in (ExitCode.OK, ExitCode.USAGE) for code in EXIT_CODES.values())


# -- the installed console script ------------------------------------------------------


def console_script() -> Path:
    script = Path(sys.executable).with_name("authkestra")
    assert script.exists(), f"{script} is missing: install the package (pip install -e .)"
    return script


def process_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHKESTRA_")}
    env.update(settings)
    return env


def test_console_script_against_oidc_provider(oidc_provider: OidcProvider) -> None:
    env = process_env(
        AUTHKESTRA_CLIENT_ID="svc-basic",
        AUTHKESTRA_TOKEN_URL=oidc_provider.token_url,
        AUTHKESTRA_SCOPES="read",
    )
    completed = subprocess.run(
        [str(console_script()), "token", "--client-secret-stdin", "--format", "json"],
        input=BASIC_SECRET + "\n",
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    assert json.loads(completed.stdout)["scope"] == "read"
    assert_no_secret(completed.stdout, completed.stderr)


def test_console_script_refuses_a_secret_in_argv(hostile: HostileServer) -> None:
    # Whatever is in argv, every user of the machine can read it from ps or /proc.
    env = process_env(AUTHKESTRA_CLIENT_ID="svc-basic", AUTHKESTRA_TOKEN_URL=f"{hostile.url}/token")
    completed = subprocess.run(
        [str(console_script()), "token", "--client-secret", ARGV_SECRET],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert completed.returncode == ExitCode.USAGE
    assert completed.stdout == ""
    assert "AUTHKESTRA_CLIENT_SECRET" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert_no_secret(completed.stdout, completed.stderr)
    assert hostile.received == []


def test_importing_the_cli_is_light() -> None:
    # Nothing test-only is loaded by the console script. (Whether typer itself loads
    # rich at import depends on the typer release, so that is not asserted.)
    code = "import sys, authkestra.cli; print([m for m in ('typer.testing',) if m in sys.modules])"
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=process_env(),
        check=True,
        timeout=60,
    )
    assert completed.stdout.strip() == "[]"


def test_cache_file_is_reused_across_runs(token_server: TokenServer, tmp_path: Path) -> None:
    import stat

    cache = tmp_path / "tokens.json"
    env = {
        "AUTHKESTRA_CLIENT_ID": "svc",
        "AUTHKESTRA_CLIENT_SECRET": "secret-value-123",
        "AUTHKESTRA_TOKEN_URL": token_server.url,
    }
    first = run(["--cache", str(cache)], env)
    second = run([], {**env, "AUTHKESTRA_TOKEN_CACHE": str(cache)})
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.stdout == second.stdout == "tok-1\n"
    assert token_server.requests == 1
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert run([], env).stdout == "tok-2\n"  # without the cache: a new token


def test_a_misspelled_variable_is_named_not_ignored(oidc_provider: OidcProvider) -> None:
    env = {**basic_env(oidc_provider), "AUTHKESTRA_SCOPE": "read"}
    result = run([], env)
    assert result.exit_code == 0
    assert (
        "authkestra: warning: AUTHKESTRA_SCOPE is not a variable authkestra reads; ignored"
        " (did you mean AUTHKESTRA_SCOPES?)"
    ) in result.stderr


def test_a_bad_auth_method_variable_is_named(oidc_provider: OidcProvider) -> None:
    env = {**basic_env(oidc_provider), "AUTHKESTRA_AUTH_METHOD": "client_secret_basik"}
    assert_failure(run([], env), ExitCode.CONFIG, "AUTHKESTRA_AUTH_METHOD: auth_method")
