"""Token exchange (RFC 8693) end to end: a real ``authkestra serve``, our flow's
``exchange()``, and raw requests for every refusal.

The story: ``caller`` calls the gateway's API with a token for it; the gateway
(``gateway``, allowed the grant) exchanges that token for one to call the reports API
with, on the caller's behalf.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from authkestra import ClientCredentialsFlow, ConfigError, InvalidGrant, InvalidScope
from authkestra.flow.events import TokenEvent, TokenEventKind
from tests.support.authkestra_server import AuthkestraServer, cli

GATEWAY_API = "https://gateway.example.test/"
REPORTS_API = "https://reports.example.test/"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
PLATFORM_KEY = ECKey.generate_key("P-256", {"kid": "platform-1"}, private=True)
INSECURE = {"AUTHKESTRA_SERVER_ALLOW_INSECURE_JWKS_URI": "true"}


class KeyHost(http.server.ThreadingHTTPServer):
    """A platform's key set on loopback."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KeyHandler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class _KeyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        jwk = {**PLATFORM_KEY.as_dict(private=False), "kid": PLATFORM_KEY.kid}
        body = json.dumps({"keys": [jwk]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Deployment:
    def __init__(self, server: AuthkestraServer, host: KeyHost) -> None:
        self.server = server
        self.host = host
        self.clients: dict[str, tuple[str, str]] = {}

    def create(self, name: str, *args: str) -> tuple[str, str]:
        self.clients[name] = self.server.create_client(name, *args)
        return self.clients[name]

    def token(self, name: str, **params: str) -> dict[str, Any]:
        client_id, secret = self.clients[name]
        answer = httpx.post(
            self.server.token_url,
            data={"grant_type": "client_credentials", **params},
            auth=(client_id, secret),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def exchange(self, name: str, **params: str) -> httpx.Response:
        client_id, secret = self.clients[name]
        return httpx.post(
            self.server.token_url,
            data={"grant_type": TOKEN_EXCHANGE, **params},
            auth=(client_id, secret),
            timeout=10,
        )

    def flow(self, name: str, **kwargs: Any) -> ClientCredentialsFlow:
        client_id, secret = self.clients[name]
        return ClientCredentialsFlow(client_id, secret, self.server.token_url, **kwargs)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    host = KeyHost()
    threading.Thread(target=host.serve_forever, daemon=True).start()
    server = AuthkestraServer(extra_env=INSECURE, log_level="info")
    try:
        d = Deployment(server, host)
        d.create("caller", "--scope", "read write", "--audience", GATEWAY_API)
        d.create("reader", "--scope", "read", "--audience", GATEWAY_API, "--token-ttl", "120")
        d.create(
            "gateway", "--can-exchange", "--scope", "read write admin", "--audience", REPORTS_API,
        )  # fmt: skip
        d.create("second-hop", "--can-exchange", "--scope", "read", "--audience", GATEWAY_API)
        d.create("plain", "--scope", "read", "--audience", REPORTS_API)
        d.create("robot", "--scope", "read", "--audience", GATEWAY_API)
        cli(
            "issuers", "add", "platform", "--issuer", f"{host.base}/platform",
            "--jwks-url", f"{host.base}/keys", "--db", server.db, env=INSECURE,
        )  # fmt: skip
        yield d
    finally:
        server.stop()
        host.shutdown()
        host.server_close()


def claims_of(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")))


def error_of(answer: httpx.Response) -> str:
    assert answer.status_code == 400, answer.text
    return str(answer.json()["error"])


# -- what a new token is -----------------------------------------------------------------------


def test_the_gateway_gets_a_narrower_token_for_the_next_api(deployment: Deployment) -> None:
    subject = deployment.token("caller")
    answer = deployment.exchange(
        "gateway",
        subject_token=subject["access_token"],
        subject_token_type=ACCESS_TOKEN,
        audience=REPORTS_API,
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["issued_token_type"] == ACCESS_TOKEN
    assert document["token_type"] == "Bearer"
    claims = claims_of(document["access_token"])
    assert claims["sub"] == "caller"  # still about the caller
    assert claims["client_id"] == "gateway"  # issued to the gateway
    assert claims["act"] == {"sub": "gateway"}  # who acts for the caller
    assert claims["aud"] == REPORTS_API
    # Neither wider than the subject's (read write) nor than the gateway's (read write admin).
    assert claims["scope"] == "read write" == document["scope"]
    assert claims["exp"] <= claims_of(subject["access_token"])["exp"]


def test_the_new_token_never_outlives_the_subject_token(deployment: Deployment) -> None:
    subject = deployment.token("reader")  # lives 120 s; the gateway's would live an hour
    answer = deployment.exchange(
        "gateway", subject_token=subject["access_token"], subject_token_type=ACCESS_TOKEN
    )
    assert answer.status_code == 200, answer.text
    assert (
        claims_of(answer.json()["access_token"])["exp"] <= claims_of(subject["access_token"])["exp"]
    )
    assert answer.json()["expires_in"] <= 120
    assert answer.json()["scope"] == "read"  # the subject's only scope


def test_an_actor_token_names_who_acts(deployment: Deployment) -> None:
    subject = deployment.token("caller")["access_token"]
    actor = deployment.token("robot")["access_token"]
    answer = deployment.exchange(
        "gateway", subject_token=subject, subject_token_type=ACCESS_TOKEN,
        actor_token=actor, actor_token_type=ACCESS_TOKEN, scope="read",
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert claims_of(answer.json()["access_token"])["act"] == {"sub": "robot"}


def test_a_second_exchange_keeps_the_chain_of_actors(deployment: Deployment) -> None:
    """caller -> second-hop (for the gateway's API) -> gateway (for the reports API)."""
    subject = deployment.token("caller")["access_token"]
    first = deployment.exchange(
        "second-hop", subject_token=subject, subject_token_type=ACCESS_TOKEN
    ).json()["access_token"]
    second = deployment.exchange(
        "gateway", subject_token=first, subject_token_type=ACCESS_TOKEN
    ).json()["access_token"]
    claims = claims_of(second)
    assert claims["sub"] == "caller"
    assert claims["act"] == {"sub": "gateway", "act": {"sub": "second-hop"}}
    assert claims["scope"] == "read"  # narrowed by the first hop, kept by the second


def test_a_trusted_issuers_token_is_a_subject_too(deployment: Deployment) -> None:
    now = int(time.time())
    platform_token = jwt.encode(
        {"alg": "ES256", "kid": PLATFORM_KEY.kid},
        {
            "iss": f"{deployment.host.base}/platform",
            "sub": "spiffe://example.test/ns/payments/sa/reporter",
            "aud": deployment.server.issuer,
            "iat": now,
            "exp": now + 300,
        },
        PLATFORM_KEY,
    )
    answer = deployment.exchange(
        "gateway", subject_token=platform_token, subject_token_type=ACCESS_TOKEN, scope="read"
    )
    assert answer.status_code == 200, answer.text
    claims = claims_of(answer.json()["access_token"])
    assert claims["sub"] == "spiffe://example.test/ns/payments/sa/reporter"
    assert claims["scope"] == "read"
    assert claims["exp"] <= now + 300


# -- refusals ----------------------------------------------------------------------------------


def test_a_client_without_the_grant_is_refused(deployment: Deployment) -> None:
    subject = deployment.token("caller")["access_token"]
    answer = deployment.exchange("plain", subject_token=subject, subject_token_type=ACCESS_TOKEN)
    assert error_of(answer) == "unauthorized_client"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"scope": "admin"}, "invalid_scope"),  # the gateway's, not the subject's
        ({"scope": "delete"}, "invalid_scope"),  # neither's
        ({"audience": "https://elsewhere.example/"}, "invalid_target"),
        ({"resource": GATEWAY_API}, "invalid_target"),  # the subject's, not the gateway's
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
         "invalid_request"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}, "invalid_request"),
        ({"subject_token_type": None}, "invalid_request"),
        ({"actor_token": "x"}, "invalid_request"),  # without its type
    ],
)  # fmt: skip
def test_what_the_exchange_may_not_give(
    deployment: Deployment, params: dict[str, Any], error: str
) -> None:
    form = {
        "subject_token": deployment.token("caller")["access_token"],
        "subject_token_type": ACCESS_TOKEN,
        **params,
    }
    form = {name: value for name, value in form.items() if value is not None}
    assert error_of(deployment.exchange("gateway", **form)) == error


@pytest.mark.parametrize(
    "subject",
    [
        "not-a-token",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjYWxsZXIifQ.",
        # Another issuer's token, well formed, from no trusted issuer.
        jwt.encode(
            {"alg": "ES256"},
            {"iss": "https://stranger.example", "sub": "x", "exp": int(time.time()) + 60},
            ECKey.generate_key("P-256", private=True),
        ),
    ],
)
def test_a_subject_token_that_is_not_valid_is_invalid_grant(
    deployment: Deployment, subject: str
) -> None:
    answer = deployment.exchange("gateway", subject_token=subject, subject_token_type=ACCESS_TOKEN)
    assert error_of(answer) == "invalid_grant"
    assert subject not in answer.text


def test_a_revoked_subject_token_cannot_be_exchanged(deployment: Deployment) -> None:
    subject = deployment.token("caller")["access_token"]
    client_id, secret = deployment.clients["caller"]
    revoked = httpx.post(
        f"{deployment.server.issuer}/revoke", data={"token": subject},
        auth=(client_id, secret), timeout=10,
    )  # fmt: skip
    assert revoked.status_code == 200
    answer = deployment.exchange("gateway", subject_token=subject, subject_token_type=ACCESS_TOKEN)
    assert error_of(answer) == "invalid_grant"


def test_the_subject_token_of_a_disabled_client_cannot_be_exchanged(
    deployment: Deployment,
) -> None:
    deployment.create("short-lived", "--scope", "read", "--audience", GATEWAY_API)
    subject = deployment.token("short-lived")["access_token"]
    cli("clients", "disable", "short-lived", "--db", deployment.server.db)
    time.sleep(2.5)  # the server's client cache (cache_seconds, 2 s)
    answer = deployment.exchange("gateway", subject_token=subject, subject_token_type=ACCESS_TOKEN)
    assert error_of(answer) == "invalid_grant"


# -- the flow ----------------------------------------------------------------------------------


def test_the_flow_exchanges_and_caches_per_subject_token(deployment: Deployment) -> None:
    events: list[TokenEvent] = []
    flow = deployment.flow("gateway", on_event=events.append)
    first_subject = deployment.token("caller")["access_token"]
    second_subject = deployment.token("caller")["access_token"]
    one = flow.exchange_sync(first_subject, audience=REPORTS_API, scopes=["read"])
    again = flow.exchange_sync(first_subject, audience=REPORTS_API, scopes=["read"])
    other = asyncio.run(flow.exchange(second_subject, audience=REPORTS_API, scopes=["read"]))
    assert one.access_token == again.access_token  # cached for that subject token
    assert other.access_token != one.access_token  # another subject, another token
    assert one.scope == "read"
    assert claims_of(one.access_token)["act"] == {"sub": "gateway"}
    acquired = [e for e in events if e.kind is TokenEventKind.ACQUIRED]
    assert len(acquired) == 2
    # Its own tokens are another matter: a client credentials token is still its own.
    own = flow.get_token_sync(["read"])
    assert claims_of(own.access_token)["sub"] == "gateway"
    assert first_subject not in repr(flow)


def test_the_flow_with_an_actor_token(deployment: Deployment) -> None:
    flow = deployment.flow("gateway")
    subject = deployment.token("caller")["access_token"]
    actor = deployment.token("robot")["access_token"]
    token = flow.exchange_sync(subject, actor_token=actor, resource=REPORTS_API)
    assert claims_of(token.access_token)["act"] == {"sub": "robot"}


def test_the_flow_says_what_the_server_refused(deployment: Deployment) -> None:
    flow = deployment.flow("gateway")
    subject = deployment.token("reader")["access_token"]
    with pytest.raises(InvalidScope):
        flow.exchange_sync(subject, scopes=["write"])
    with pytest.raises(InvalidGrant) as caught:
        flow.exchange_sync("no.such.token")
    assert "no.such.token" not in str(caught.value)
    with pytest.raises(ConfigError, match="subject_token must be a token"):
        flow.exchange_sync("")
    with pytest.raises(ConfigError, match="token type URI"):
        flow.exchange_sync(subject, subject_token_type="access_token")


def test_the_metadata_and_the_cli_show_the_grant(deployment: Deployment) -> None:
    metadata = httpx.get(
        f"{deployment.server.issuer}/.well-known/oauth-authorization-server", timeout=10
    ).json()
    assert TOKEN_EXCHANGE in metadata["grant_types_supported"]
    db = ("--db", deployment.server.db)
    shown = json.loads(cli("clients", "show", "gateway", "--format", "json", *db).stdout)
    assert shown["can_exchange"] is True
    cli("clients", "update", "gateway", "--cannot-exchange", *db)
    shown = json.loads(cli("clients", "show", "gateway", "--format", "json", *db).stdout)
    assert shown["can_exchange"] is False
    cli("clients", "update", "gateway", "--can-exchange", *db)
