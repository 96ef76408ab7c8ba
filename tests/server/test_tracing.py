"""OpenTelemetry traces: a server span per request, an ``authkestra.token`` span per token
request, nothing secret in any attribute (in-memory exporter)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from authkestra._protocol.client_auth import basic_credentials
from authkestra.server import create_app
from authkestra.server.tracing import configure_from_environment
from tests.server.harness import ISSUER, InProcessServer
from tests.support.authkestra_server import cli
from tests.support.redis_server import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def traced_requests(
    server: InProcessServer, requests: list[tuple[str, str, dict[str, str], bytes]]
) -> tuple[list[httpx.Response], list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(server.settings, context=server.ctx, tracer_provider=provider)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            return [
                await client.request(method, path, headers=headers, content=body)
                for method, path, headers, body in requests
            ]

    return anyio.run(run), list(exporter.get_finished_spans())


def token_request(client: tuple[str, str]) -> tuple[str, str, dict[str, str], bytes]:
    headers = {
        "Authorization": basic_credentials(*client),
        "Content-Type": "application/x-www-form-urlencoded",
        "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    }
    return ("POST", "/token", headers, b"grant_type=client_credentials")


def test_a_token_request_is_traced_with_its_client_and_outcome(server: InProcessServer) -> None:
    client = server.add_client()
    answers, spans = traced_requests(
        server, [token_request(client), token_request((client[0], "wrong"))]
    )
    assert [a.status_code for a in answers] == [200, 401]
    tokens = [s for s in spans if s.name == "authkestra.token"]
    assert [s.attributes["authkestra.outcome"] for s in tokens] == ["issued", "invalid_client"]
    assert tokens[0].attributes["authkestra.client_id"] == client[0]
    assert "authkestra.client_id" not in tokens[1].attributes  # not authenticated
    # Inside the request's server span, in the caller's trace (traceparent followed).
    servers = [s for s in spans if s.kind.name == "SERVER"]
    assert len(servers) == 2
    assert all(format(s.context.trace_id, "032x") == TRACE_ID for s in tokens + servers)
    assert tokens[0].parent is not None and tokens[0].parent.span_id == servers[0].context.span_id
    # Nothing secret in any attribute or event.
    dumped = json.dumps([dict(s.attributes or {}) for s in spans], default=str)
    assert client[1] not in dumped
    assert answers[0].json()["access_token"] not in dumped


def test_untraced_by_default(server: InProcessServer) -> None:
    app = create_app(server.settings, context=server.ctx)
    assert getattr(app.state, "tracer", None) is None


def test_the_exporter_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tokens")
    provider = configure_from_environment()
    assert provider.resource.attributes["service.name"] == "tokens"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-ish")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        configure_from_environment()


def test_serve_with_an_unknown_exporter_is_one_line(tmp_path: Path) -> None:
    result = cli(
        "serve", "--tracing", "--port", str(free_port()), "--db", f"sqlite:///{tmp_path}/a.db",
        env={"OTEL_TRACES_EXPORTER": "carrier-pigeon"}, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "authkestra: error: --tracing: OTEL_TRACES_EXPORTER='carrier-pigeon': use otlp or console"
        )
    )
    assert "Traceback" not in result.stderr
