"""The flow over loopback against a server that answers badly, slowly, or maliciously.

Every case must end in a typed AuthError, promptly, with no secret in the message.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable

import anyio
import httpx
import pytest

from authkestra import (
    AuthError,
    ClientCredentialsFlow,
    ConfigError,
    InvalidClient,
    MalformedResponse,
    NetworkError,
    ProviderError,
    RateLimited,
    RetryPolicy,
)
from tests.support.hostile_server import HostileServer, Received, Reply

SECRET = "hostile-test-secret-§:+% ü"
FAST = RetryPolicy(max_attempts=3, base_backoff=0.01, max_backoff=0.02, total_timeout=3)


def flow_for(server: HostileServer, **kwargs: object) -> ClientCredentialsFlow:
    options: dict[str, object] = {"retry": FAST, "timeout": 2.0}
    options.update(kwargs)
    return ClientCredentialsFlow("svc", SECRET, f"{server.url}/token", **options)  # type: ignore[arg-type]


def ok_body(**extra: object) -> str:
    return json.dumps(
        {"access_token": "tok-123", "token_type": "Bearer", "expires_in": 60, **extra}
    )


Mode = Callable[[ClientCredentialsFlow], object]
MODES: dict[str, Mode] = {
    "sync": lambda flow: flow.get_token_sync(["read"]),
    "async": lambda flow: anyio.run(flow.get_token, ["read"]),
}


def expect(flow: ClientCredentialsFlow, error: type[AuthError], mode: str = "sync") -> AuthError:
    with pytest.raises(error) as info:
        MODES[mode](flow)
    message = str(info.value) + repr(info.value)
    assert "hostile-test-secret" not in message
    return info.value


# -- the corpus: (reply, expected error) -------------------------------------------------

CORPUS: dict[str, tuple[Reply, type[AuthError]]] = {
    "html 502 from a gateway": (
        Reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"),
        ProviderError,
    ),
    "empty 200": (Reply(200, ""), MalformedResponse),
    "html 200 (login page)": (
        Reply(200, "<html>Sign in</html>", content_type="text/html"),
        MalformedResponse,
    ),
    "json array": (Reply(200, "[]"), MalformedResponse),
    "json string": (Reply(200, '"token"'), MalformedResponse),
    "truncated json": (Reply(200, '{"access_token": "a", "token_'), MalformedResponse),
    "no access_token": (Reply(200, '{"token_type": "Bearer"}'), MalformedResponse),
    "empty access_token": (
        Reply(200, '{"access_token": "", "token_type": "Bearer"}'),
        MalformedResponse,
    ),
    "header injection in token": (
        Reply(200, json.dumps({"access_token": "a\r\nSet-Cookie: x", "token_type": "Bearer"})),
        MalformedResponse,
    ),
    "token_type mac": (Reply(200, '{"access_token": "a", "token_type": "mac"}'), MalformedResponse),
    "negative expires_in": (
        Reply(200, '{"access_token": "a", "token_type": "Bearer", "expires_in": -60}'),
        MalformedResponse,
    ),
    "NaN expires_in": (
        Reply(200, '{"access_token": "a", "token_type": "Bearer", "expires_in": NaN}'),
        MalformedResponse,
    ),
    "duplicate members": (
        Reply(200, '{"access_token": "a", "access_token": "b", "token_type": "Bearer"}'),
        MalformedResponse,
    ),
    "deeply nested": (Reply(200, "[" * 200_000 + "]" * 200_000), MalformedResponse),
    "utf-16 body": (Reply(200, ok_body().encode("utf-16")), MalformedResponse),
    "error in a 200": (Reply(200, '{"error": "invalid_client"}'), InvalidClient),
    "400 without json": (Reply(400, "Bad Request", content_type="text/plain"), ProviderError),
    "401 invalid_client": (
        Reply(401, '{"error": "invalid_client"}', headers={"WWW-Authenticate": "Basic"}),
        InvalidClient,
    ),
    "404 json without error": (Reply(404, '{"message": "not found"}'), ProviderError),
    "redirect to elsewhere": (
        Reply(302, "", headers={"Location": "https://evil.example/steal"}),
        ProviderError,
    ),
    "307 redirect": (Reply(307, "", headers={"Location": "/token2"}), ProviderError),
    "429 with long Retry-After": (Reply(429, "", headers={"Retry-After": "3600"}), RateLimited),
    "503 every time": (Reply(503, "down", content_type="text/plain"), ProviderError),
    "oversized body": (
        Reply(200, '{"access_token": "' + "a" * 400_000 + '", "token_type": "Bearer"}'),
        MalformedResponse,
    ),
    "endless body": (Reply(200, '{"access_token": "', behaviour="endless"), MalformedResponse),
    "connection dropped": (Reply(behaviour="close"), NetworkError),
    "not http at all": (Reply(raw=b"SSH-2.0-OpenSSH_9.0\r\n"), NetworkError),
    "garbage status line": (Reply(raw=b"HTTP/1.1 abc\r\n\r\n"), NetworkError),
    "echoes the secret back": (
        Reply(500, f"<pre>Authorization failed for {SECRET}</pre>", content_type="text/html"),
        ProviderError,
    ),
    "echoes the secret in error_description": (
        Reply(
            401,
            json.dumps({"error": "invalid_client", "error_description": f"bad secret {SECRET}"}),
        ),
        InvalidClient,
    ),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", list(CORPUS))
def test_corpus(hostile: HostileServer, case: str, mode: str) -> None:
    reply, error = CORPUS[case]
    hostile.reply_with(reply)
    err = expect(flow_for(hostile), error, mode)
    assert type(err) is error or error in (ProviderError, NetworkError)


def test_html_502_message_has_a_short_excerpt(hostile: HostileServer) -> None:
    hostile.reply_with(
        Reply(502, "<html><title>502 Bad Gateway</title>" + "x" * 10_000, content_type="text/html")
    )
    err = expect(flow_for(hostile), ProviderError)
    assert err.status_code == 502
    assert "502 Bad Gateway" in str(err) and len(str(err)) < 300


def test_secret_echoed_back_is_masked_in_every_encoding(hostile: HostileServer) -> None:
    from urllib.parse import quote_plus

    hostile.reply_with(Reply(500, f"{SECRET} | {quote_plus(SECRET)} |", content_type="text/plain"))
    err = expect(flow_for(hostile, retry=RetryPolicy(max_attempts=1)), ProviderError)
    assert "***" in str(err)
    assert quote_plus(SECRET) not in str(err)


def test_retries_then_success(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(503, "busy"), Reply(502, "busy"), Reply(200, ok_body()))
    token = flow_for(hostile).get_token_sync(["read"])
    assert token.access_token == "tok-123"
    assert len(hostile.received) == 3


def test_400_is_never_retried(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(400, '{"error": "invalid_request"}'))
    expect(flow_for(hostile), ProviderError)
    assert len(hostile.received) == 1


def test_429_retry_after_is_honoured(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(429, "", headers={"Retry-After": "0"}), Reply(200, ok_body()))
    assert flow_for(hostile).get_token_sync().access_token == "tok-123"
    assert len(hostile.received) == 2


def test_rate_limited_carries_retry_after(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(429, '{"error": "slow_down"}', headers={"Retry-After": "3600"}))
    err = expect(flow_for(hostile), RateLimited)
    assert isinstance(err, RateLimited) and err.retry_after == 3600.0
    assert len(hostile.received) == 1  # longer than we wait: reported, not slept on


def test_redirect_target_is_never_contacted(hostile: HostileServer) -> None:
    other = HostileServer()
    try:
        other.reply_with(Reply(200, ok_body()))
        hostile.reply_with(Reply(307, "", headers={"Location": f"{other.url}/token"}))
        expect(flow_for(hostile), ProviderError)
        assert other.received == []
    finally:
        other.stop()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_server_that_never_answers_times_out(hostile: HostileServer, mode: str) -> None:
    hostile.reply_with(Reply(behaviour="hang"))
    flow = flow_for(hostile, timeout=0.3, retry=RetryPolicy(max_attempts=2, base_backoff=0.01))
    err = expect(flow, NetworkError, mode)
    assert "timed out" in str(err)
    assert len(hostile.received) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_dripping_server_hits_the_total_deadline(hostile: HostileServer, mode: str) -> None:
    # One byte every 0.2 s never trips a 1 s read timeout; the total deadline still ends it.
    hostile.reply_with(Reply(200, ok_body(), behaviour="drip"))
    flow = flow_for(hostile, timeout=1.0, retry=RetryPolicy(max_attempts=1, total_timeout=1.0))
    expect(flow, NetworkError, mode)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connection_refused(mode: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    flow = ClientCredentialsFlow("svc", SECRET, f"http://127.0.0.1:{port}/token", retry=FAST)
    err = expect(flow, NetworkError, mode)
    assert isinstance(err.__cause__, httpx.ConnectError)


def test_what_the_flow_sends(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(200, ok_body()))
    flow_for(
        hostile,
        audience="api://x",
        resource=["https://r1/", "https://r2/"],
        extra_params={"t": "1"},
    ).get_token_sync(["read", "write"])
    (request,) = hostile.received
    assert request.method == "POST" and request.path == "/token"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"].startswith("Basic ")
    body = request.body.decode()
    assert "client_secret" not in body and "hostile-test-secret" not in body
    assert "resource=https%3A%2F%2Fr1%2F&resource=https%3A%2F%2Fr2%2F" in body
    assert "scope=read+write" in body and "audience=api%3A%2F%2Fx" in body and "t=1" in body


def test_basic_header_decodes_to_form_encoded_utf8(hostile: HostileServer) -> None:
    from authkestra._protocol.client_auth import decode_basic_credentials

    hostile.reply_with(Reply(200, ok_body()))
    flow_for(hostile).get_token_sync()
    assert decode_basic_credentials(hostile.received[0].headers["authorization"]) == ("svc", SECRET)


def test_unencoded_basic_switch(hostile: HostileServer) -> None:
    import base64

    hostile.reply_with(Reply(200, ok_body()))
    flow_for(hostile, form_encode_basic=False).get_token_sync()
    value = hostile.received[0].headers["authorization"].removeprefix("Basic ")
    assert base64.b64decode(value).decode() == f"svc:{SECRET}"


def test_granted_scope_in_answer_wins(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(200, ok_body(scope="read")))
    assert flow_for(hostile).get_token_sync(["read", "write"]).scopes == ("read",)


# -- discovery against hostile metadata --------------------------------------------------


def metadata_script(
    server: HostileServer, metadata: dict[str, object] | str, *, where: str = "rfc8414"
) -> Callable[[Received], Reply]:
    def script(request: Received) -> Reply:
        if request.path == "/.well-known/oauth-authorization-server" and where == "rfc8414":
            return Reply(200, metadata if isinstance(metadata, str) else json.dumps(metadata))
        if request.path == "/.well-known/openid-configuration" and where == "oidc":
            return Reply(200, metadata if isinstance(metadata, str) else json.dumps(metadata))
        if request.path == "/token":
            return Reply(200, ok_body())
        return Reply(404, "not found", content_type="text/plain")

    return script


@pytest.mark.parametrize("where", ["rfc8414", "oidc"])
def test_discovery_paths(hostile: HostileServer, where: str) -> None:
    hostile.script = metadata_script(
        hostile, {"issuer": hostile.url, "token_endpoint": f"{hostile.url}/token"}, where=where
    )
    flow = ClientCredentialsFlow("svc", SECRET, issuer=hostile.url, retry=FAST)
    assert flow.get_token_sync().access_token == "tok-123"
    assert flow.get_token_sync(force_refresh=True).access_token == "tok-123"
    paths = [r.path for r in hostile.received]
    assert paths.count("/token") == 2
    assert sum(p.startswith("/.well-known") for p in paths) == (
        1 if where == "rfc8414" else 2
    )  # discovered once


@pytest.mark.parametrize(
    "metadata",
    [
        {"issuer": "https://attacker.example", "token_endpoint": "https://attacker.example/token"},
        {"token_endpoint": "http://127.0.0.1:1/token"},
        "{not json",
        "[]",
    ],
)
def test_bad_metadata(hostile: HostileServer, metadata: dict[str, object] | str) -> None:
    hostile.script = metadata_script(hostile, metadata)
    flow = ClientCredentialsFlow("svc", SECRET, issuer=hostile.url, retry=FAST)
    expect(flow, MalformedResponse)
    assert not any(r.path == "/token" for r in hostile.received)


def test_metadata_pointing_token_endpoint_at_plain_http_elsewhere(hostile: HostileServer) -> None:
    hostile.script = metadata_script(
        hostile, {"issuer": hostile.url, "token_endpoint": "http://as.example/token"}
    )
    flow = ClientCredentialsFlow("svc", SECRET, issuer=hostile.url, retry=FAST)
    err = expect(flow, MalformedResponse)
    assert "https" in str(err)


def test_no_metadata_anywhere(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(404, "nope", content_type="text/plain"))
    flow = ClientCredentialsFlow("svc", SECRET, issuer=hostile.url, retry=FAST)
    err = expect(flow, ProviderError)
    assert "no authorization server metadata" in str(err)


# -- secrets and logs ----------------------------------------------------------------------


def test_nothing_secret_is_logged(hostile: HostileServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hostile.reply_with(Reply(503, f"echo {SECRET}"), Reply(200, ok_body()))
    flow_for(hostile).get_token_sync()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "retry" in text
    assert "hostile-test-secret" not in text and "tok-123" not in text
    assert "Basic " not in text


def test_rotating_secret_source_retries_once(hostile: HostileServer) -> None:
    secrets = iter(["old-secret-value", "new-secret-value", "never-read"])
    reads: list[int] = []

    def source() -> str:
        reads.append(1)
        return next(secrets)

    def script(request: Received) -> Reply:
        from authkestra._protocol.client_auth import decode_basic_credentials

        _, secret = decode_basic_credentials(request.headers["authorization"])
        if secret == "new-secret-value":
            return Reply(200, ok_body())
        return Reply(401, '{"error": "invalid_client"}')

    hostile.script = script
    flow = ClientCredentialsFlow("svc", source, f"{hostile.url}/token", retry=FAST)
    assert flow.get_token_sync().access_token == "tok-123"
    assert len(reads) == 2 and len(hostile.received) == 2


def test_unchanged_rotating_secret_is_not_retried(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(401, '{"error": "invalid_client"}'))
    flow = ClientCredentialsFlow(
        "svc", lambda: "same-secret-value", f"{hostile.url}/token", retry=FAST
    )
    expect(flow, InvalidClient)
    assert len(hostile.received) == 1


def test_static_secret_is_not_retried(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(401, '{"error": "invalid_client"}'))
    expect(flow_for(hostile), InvalidClient)
    assert len(hostile.received) == 1


def test_failing_secret_source_is_a_config_error(hostile: HostileServer) -> None:
    def vault() -> str:
        raise RuntimeError(f"vault sealed; last value was {SECRET}")

    flow = ClientCredentialsFlow("svc", vault, f"{hostile.url}/token")
    err = expect(flow, ConfigError)
    assert "RuntimeError" in str(err)
    assert hostile.received == []


def test_async_secret_source_in_sync_code(hostile: HostileServer) -> None:
    async def vault() -> str:
        return "async-secret-value"

    hostile.reply_with(Reply(200, ok_body()))
    flow = ClientCredentialsFlow("svc", vault, f"{hostile.url}/token")
    assert flow.get_token_sync().access_token == "tok-123"


def test_sync_secret_source_runs_off_the_event_loop(hostile: HostileServer) -> None:
    import threading

    threads: list[str] = []

    def blocking_source() -> str:
        threads.append(threading.current_thread().name)
        time.sleep(0.01)
        return "blocking-secret-value"

    hostile.reply_with(Reply(200, ok_body()))
    flow = ClientCredentialsFlow("svc", blocking_source, f"{hostile.url}/token")
    anyio.run(flow.get_token)
    assert threads and threads[0] != threading.main_thread().name


def test_injected_http_client_is_used_and_left_open(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(200, ok_body()))
    seen: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]}) as client:
        flow = flow_for(hostile, http_client=client)
        flow.get_token_sync()
        assert not client.is_closed
    assert seen == [f"{hostile.url}/token"]


def test_trio_backend(hostile: HostileServer) -> None:
    hostile.reply_with(Reply(200, ok_body()))
    token = anyio.run(flow_for(hostile).get_token, backend="trio")
    assert token.access_token == "tok-123"


def test_a_server_that_is_down_reads_the_same_in_sync_and_async_code() -> None:
    """The system's reason, not what the async stack wrapped it in."""
    import asyncio
    import socket

    from authkestra import NetworkError, RetryPolicy

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    flow = ClientCredentialsFlow(
        "svc", "a-secret-value", f"http://127.0.0.1:{port}/token",
        retry=RetryPolicy(max_attempts=1),
    )  # fmt: skip
    with pytest.raises(NetworkError) as sync_error:
        flow.get_token_sync()
    with pytest.raises(NetworkError) as async_error:
        asyncio.run(flow.get_token())
    assert str(sync_error.value) == str(async_error.value)
    assert "Connection refused" in str(sync_error.value)
