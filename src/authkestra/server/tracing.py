"""OpenTelemetry traces of the server (the ``otel`` extra; off unless ``tracing`` is set).

A server span per request (OpenTelemetry's own ASGI middleware, which follows an
incoming ``traceparent``) and, inside a token request, an ``authkestra.token`` span
with the client id, the scopes granted and the outcome. Never a secret, an
assertion or a token as an attribute.

Spans go to the tracer provider given to :func:`instrument` or, when the server
runs as ``authkestra serve``, to one made from the OpenTelemetry environment
(``OTEL_SERVICE_NAME``; ``OTEL_TRACES_EXPORTER`` ``otlp``, the default, to
``OTEL_EXPORTER_OTLP_ENDPOINT``, or ``console``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

__all__ = ["configure_from_environment", "instrument", "token_span"]

_TRACER_NAME = "authkestra.server"


def configure_from_environment() -> Any:
    """A tracer provider exporting as the ``OTEL_*`` environment says."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME", "authkestra")}
        )
    )
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    exporter: Any
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter_name!r}: use otlp or console")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def instrument(app: Any, tracer_provider: Any) -> None:
    """Trace every request of the Starlette ``app`` into ``tracer_provider``."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=tracer_provider)
    app.state.tracer = trace.get_tracer(_TRACER_NAME, tracer_provider=tracer_provider)


#: What an untraced request enters instead of a span: nothing, at no cost.
_NO_SPAN: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()


def token_span(app: Any) -> contextlib.AbstractContextManager[Any]:
    """The ``authkestra.token`` span (its attributes set by the caller), or, untraced, a
    context that yields None."""
    tracer = getattr(app.state, "tracer", None)
    if tracer is None:
        return _NO_SPAN
    span: contextlib.AbstractContextManager[Any] = tracer.start_as_current_span("authkestra.token")
    return span
