"""Running the demo: two servers on loopback, one client, printed step by step."""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

import httpx
import uvicorn

from .._jose import base64url
from .._jose.compact import peek_claims
from ..flow.client_credentials import ClientCredentialsFlow
from ..resource.verifier import JWTVerifier
from ..server.app import create_app
from ..server.context import build_context
from ..server.registration import ClientSpec, Registry
from ..server.settings import ServerSettings
from .api import REQUIRED_SCOPE, create_demo_api

__all__ = ["run_demo"]

API_AUDIENCE = "https://reports.demo.test/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serving(app: Any, port: int) -> Iterator[str]:
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


def _tampered(token: str) -> str:
    """The token with its payload changed and the signature kept: what an attacker would try."""
    header, _payload, signature = token.split(".")
    claims = peek_claims(token) or {}
    claims["scope"] = claims.get("scope", "") + " admin"
    return f"{header}.{base64url.encode(json.dumps(claims).encode())}.{signature}"


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

        issued = Registry(ctx.store, settings).create(
            ClientSpec(
                "demo-reporting-job",
                scopes=(REQUIRED_SCOPE, "reports:write"),
                audiences=(API_AUDIENCE,),
                default_scopes=(REQUIRED_SCOPE,),
            )
        )
        service_secret = issued.secret
        assert service_secret is not None
        step("2. Registered client demo-reporting-job (scopes reports:read reports:write)")

        with _serving(create_app(settings, context=ctx), port) as issuer:
            # The API checks tokens itself: signature against the issuer's JWKS, then
            # issuer, audience, expiry and typ (RFC 9068), then the scope.
            verifier = JWTVerifier(issuer=issuer, audience=API_AUDIENCE)
            with _serving(create_demo_api(verifier), _free_port()) as api:
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
                forged = _tampered(token.access_token)
                refused = httpx.get(f"{api}/reports", headers={"Authorization": f"Bearer {forged}"})
                step(
                    "6. GET /reports with that token's claims altered (scope admin added) ->"
                    f" {refused.status_code} {refused.json()}"
                )
                writer = flow.get_token_sync(["reports:write"], resource=API_AUDIENCE)
                denied = httpx.get(
                    f"{api}/reports", headers={"Authorization": writer.authorization}
                )
                step(
                    "7. GET /reports with a valid token for reports:write only ->"
                    f" {denied.status_code} {denied.json()}"
                )
                ok = (answer.status_code, refused.status_code, denied.status_code) == (
                    200,
                    401,
                    403,
                )
                ok &= _operate(step, settings, ctx, issuer)
        ctx.close()
    step(
        "11. Servers stopped. " + ("Demo complete." if ok else "Something went wrong (see above).")
    )
    return 0 if ok else 1


def _operate(step: Any, settings: ServerSettings, ctx: Any, issuer: str) -> bool:
    """The operator's side: the admin API (a client made through it gets tokens at once)
    and a metrics scrape, with a token of the server's own."""
    from ..server.admin import ADMIN_SCOPE, create_admin_app

    operator = Registry(ctx.store, settings).create(
        ClientSpec("demo-operator", scopes=(ADMIN_SCOPE,))
    )
    assert operator.secret is not None
    ops = ClientCredentialsFlow("demo-operator", operator.secret, issuer=issuer)
    with (
        _serving(create_admin_app(settings, context=ctx), _free_port()) as admin,
        httpx.Client(base_url=admin, auth=ops.auth([ADMIN_SCOPE])) as http,
    ):
        made = http.post(
            "/admin/clients",
            json={"client_id": "demo-nightly-export", "scope": REQUIRED_SCOPE,
                  "audience": [API_AUDIENCE]},
        )  # fmt: skip
        secret = made.json().get("client_secret", "")
        step(
            f"8. Admin API {admin}: POST /admin/clients as demo-operator (scope {ADMIN_SCOPE})"
            f" -> {made.status_code}, demo-nightly-export and its secret ({len(secret)} characters,"
            " in this answer only)"
        )
        export = ClientCredentialsFlow("demo-nightly-export", secret, issuer=issuer)
        first = export.get_token_sync([REQUIRED_SCOPE], resource=API_AUDIENCE)
        step(f"9. demo-nightly-export gets a token at once: scope {first.scope!r}")
        scraped = http.get("/metrics")
        issued = [
            line
            for line in scraped.text.splitlines()
            if line.startswith("authkestra_token_requests_total{")
        ]
        step(f"10. GET /metrics -> {scraped.status_code}:")
        for line in issued:
            step(f"      {line}")
    return made.status_code == 201 and scraped.status_code == 200 and bool(issued)
