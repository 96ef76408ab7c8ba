"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve: store, Redis, a
signing key), for load balancers and orchestrators.

``/healthz`` does no I/O: a liveness probe must not restart a process because its
database is down. ``/readyz`` checks what a token request needs, each check bounded
by :data:`CHECK_TIMEOUT`; when one fails it answers 503 with the reason (the kind
of failure, never its text: that may hold a host or a user) and ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..context import ServerContext
from ._common import RETRY_UNAVAILABLE_AFTER

__all__ = ["CHECK_TIMEOUT", "health_endpoint", "readiness_endpoint"]

#: Seconds each readiness check may take before it counts as failed.
CHECK_TIMEOUT = 3.0


async def health_endpoint(_request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def _checks(ctx: ServerContext) -> dict[str, Callable[[], object]]:
    checks: dict[str, Callable[[], object]] = {"store": ctx.store.ping}
    if ctx.redis is not None:
        checks["redis"] = ctx.redis.ping
    checks["signing_key"] = ctx.keys.signing_key
    return checks


async def readiness_endpoint(request: Request) -> Response:
    ctx: ServerContext = request.app.state.ctx
    results: dict[str, str] = {}
    for name, check in _checks(ctx).items():
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
            results[name] = "ok"
        except TimeoutError:
            results[name] = f"no answer within {CHECK_TIMEOUT:g} s"
        except Exception as exc:
            results[name] = f"failed ({type(exc).__name__})"
    failed = [name for name, result in results.items() if result != "ok"]
    if failed:
        return JSONResponse(
            {
                "status": "unavailable",
                "reason": f"{', '.join(failed)} not ready",
                "checks": results,
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_UNAVAILABLE_AFTER), "Cache-Control": "no-store"},
        )
    return JSONResponse(
        {"status": "ready", "checks": results}, headers={"Cache-Control": "no-store"}
    )
