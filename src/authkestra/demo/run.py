"""Running the demo: two servers on loopback, one client, printed step by step."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import TextIO

import httpx
import uvicorn
from starlette.applications import Starlette

from ..flow.client_credentials import ClientCredentialsFlow
from ..server.app import create_app
from ..server.context import build_context
from ..server.settings import ServerSettings
from ..server.store import new_secret
from .api import REQUIRED_SCOPE, create_demo_api

__all__ = ["run_demo"]

API_AUDIENCE = "https://reports.demo.test/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serving(app: Starlette, port: int) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on 127.0.0.1:port until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"a demo server did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _mask(token: str) -> str:
    return f"{token[:12]}... ({len(token)} characters)"


def run_demo(out: TextIO) -> int:
    """Run the demo, printing each step to ``out``; 0 when every step did what it should."""

    def step(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    with tempfile.TemporaryDirectory(prefix="authkestra-demo-") as workdir:
        port = _free_port()
        settings = ServerSettings(
            db=f"sqlite:///{workdir}/authkestra.db", port=port, issuer=f"http://127.0.0.1:{port}"
        )
        ctx = build_context(settings)
        step(f"1. Authorization server: {settings.effective_issuer()} (SQLite store in {workdir})")

        service_secret, api_secret = new_secret(), new_secret()
        ctx.store.create_client(
            "demo-reporting-job",
            secret_hash=ctx.hasher.hash(service_secret),
            auth_method="client_secret_basic",
            scopes=(REQUIRED_SCOPE, "reports:write"),
            audiences=(API_AUDIENCE,),
            default_scopes=(REQUIRED_SCOPE,),
        )
        ctx.store.create_client(
            "demo-reports-api",
            secret_hash=ctx.hasher.hash(api_secret),
            auth_method="client_secret_basic",
            scopes=(),
            audiences=(),
        )
        step(
            "2. Registered clients: demo-reporting-job (the caller) and demo-reports-api (the API)"
        )

        with _serving(create_app(settings, context=ctx), port) as issuer:

            async def check_token(token: str) -> dict[str, object] | None:
                # The API asks the authorization server whether the token is active (RFC 7662).
                async with httpx.AsyncClient(
                    auth=("demo-reports-api", api_secret), timeout=10
                ) as http:
                    answer = await http.post(f"{issuer}/introspect", data={"token": token})
                claims = answer.json() if answer.status_code == 200 else {}
                return claims if claims.get("active") is True else None

            with _serving(create_demo_api(check_token), _free_port()) as api:
                step(f"3. Protected API: {api}/reports (needs a token with scope {REQUIRED_SCOPE})")
                flow = ClientCredentialsFlow("demo-reporting-job", service_secret, issuer=issuer)
                token = flow.get_token_sync([REQUIRED_SCOPE], resource=API_AUDIENCE)
                step(
                    f"4. Token from ClientCredentialsFlow: {_mask(token.access_token)},"
                    f" scope {token.scope!r}, expires in {token.expires_in} s"
                )
                with httpx.Client(auth=flow.auth([REQUIRED_SCOPE], resource=API_AUDIENCE)) as http:
                    answer = http.get(f"{api}/reports")
                step(f"5. GET /reports with the token -> {answer.status_code} {answer.json()}")
                refused = httpx.get(f"{api}/reports", headers={"Authorization": "Bearer forged"})
                step(
                    f"6. GET /reports with a forged token -> {refused.status_code} {refused.json()}"
                )
                ok = answer.status_code == 200 and refused.status_code == 401
        ctx.close()
    step("7. Servers stopped. " + ("Demo complete." if ok else "Something went wrong (see above)."))
    return 0 if ok else 1
