"""Real third-party clients against ``authkestra serve``.

npm openid-client (discovery, clientCredentialsGrant, introspection, revocation), npm
oauth4webapi (clientCredentialsGrantRequest, and validateJwtAccessToken, which checks our
tokens against RFC 9068 with our published JWKS), Python Authlib's OAuth2 clients, and our
own ClientCredentialsFlow -- against real server processes (ES256, and one EdDSA), each with
its own SQLite store and clients registered with the ``authkestra clients`` CLI.

The node peers (peers/*_check.mjs) read their inputs, secrets included, as JSON on stdin
and answer JSON on stdout: {"error": {...}} with the library's error name and code when
the library refuses something.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from authkestra import ClientCredentialsFlow, InvalidClient, InvalidScope, InvalidTarget
from tests.support.authkestra_server import AuthkestraServer

with warnings.catch_warnings(record=True):
    # Authlib announces, on import, that it would rather use the httpx2 package than httpx.
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.interop

PEERS = Path(__file__).resolve().parent / "peers"
API = "https://api.example.test/"
REPORTS = "https://reports.example.test/"
ELSEWHERE = "https://elsewhere.example.test/"


@dataclasses.dataclass(frozen=True)
class Registered:
    client_id: str
    secret: str
    auth_method: str


@dataclasses.dataclass(frozen=True)
class Deployment:
    server: AuthkestraServer
    clients: dict[str, Registered]

    @property
    def issuer(self) -> str:
        return self.server.issuer


def register(
    server: AuthkestraServer, client_id: str, auth_method: str, options: tuple[str, ...]
) -> Registered:
    client_id, secret = server.create_client(client_id, "--auth-method", auth_method, *options)
    return Registered(client_id, secret, auth_method)


#: kind -> (client id, auth method, `authkestra clients create` options). Both ids hold
#: every character a client id may have besides letters and digits: . ~ - (oauth4webapi
#: and openid-client percent-encode all three inside Basic credentials, RFC 6749 §2.3.1).
CLIENTS = {
    "basic": (
        "billing.svc~basic-1",
        "client_secret_basic",
        (
            "--scope",
            "read",
            "--scope",
            "write",
            "--audience",
            API,
            "--audience",
            REPORTS,
            "--can-introspect",
            "audience",
        ),
    ),
    "post": (
        "reports.svc~post-1",
        "client_secret_post",
        ("--scope", "read", "--scope", "write", "--audience", API, "--can-introspect", "audience"),
    ),
}
#: A signing algorithm besides the default ES256, on a server of its own with a Basic client.
#: (EdDSA rather than RS256: the one a client library is likelier to lack.)
OTHER_ALG = "EdDSA"


def start(alg: str | None, kinds: tuple[str, ...]) -> Deployment:
    """A server (``alg``: its signing algorithm) with those of the CLIENTS registered."""
    server = AuthkestraServer(extra_env={"AUTHKESTRA_SERVER_SIGNING_ALG": alg} if alg else None)
    try:
        with ThreadPoolExecutor() as pool:
            futures = {kind: pool.submit(register, server, *CLIENTS[kind]) for kind in kinds}
            clients = {kind: future.result() for kind, future in futures.items()}
    except BaseException:
        server.stop()
        raise
    return Deployment(server, clients)


@pytest.fixture(scope="module")
def deployments() -> Iterator[dict[str, Deployment]]:
    """The default (ES256) server and the OTHER_ALG one, started side by side."""
    with ThreadPoolExecutor() as pool:
        futures = {
            "ES256": pool.submit(start, None, tuple(CLIENTS)),
            OTHER_ALG: pool.submit(start, OTHER_ALG, ("basic",)),
        }
    started: dict[str, Deployment] = {}
    failures: list[BaseException] = []
    for alg, future in futures.items():
        failure = future.exception()
        if failure is None:
            started[alg] = future.result()
        else:
            failures.append(failure)
    try:
        if failures:
            raise failures[0]
        yield started
    finally:
        for deployment in started.values():
            deployment.server.stop()


@pytest.fixture(scope="module")
def deployment(deployments: dict[str, Deployment]) -> Deployment:
    return deployments["ES256"]


# -- helpers ---------------------------------------------------------------------------


def run_peer(script: str, **inputs: Any) -> tuple[int, dict[str, Any]]:
    """Run a node peer with ``inputs`` as JSON on stdin: (exit status, its JSON answer)."""
    if not (PEERS / "node_modules" / "openid-client").is_dir():
        pytest.fail(f"npm packages missing in {PEERS}: run 'make test' (it runs npm ci there)")
    completed = subprocess.run(
        ["node", str(PEERS / script)],
        input=json.dumps(inputs),
        capture_output=True,
        text=True,
        cwd=PEERS,
        timeout=60,
        check=False,
    )
    try:
        answer = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"{script} printed no JSON (exit {completed.returncode}):\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        )
    return completed.returncode, answer


def peer_ok(script: str, **inputs: Any) -> dict[str, Any]:
    status, answer = run_peer(script, **inputs)
    assert status == 0 and "error" not in answer, f"{script} refused: {answer.get('error')}"
    return answer


def peer_error(script: str, **inputs: Any) -> dict[str, Any]:
    status, answer = run_peer(script, **inputs)
    assert status == 1 and "error" in answer, f"{script} did not fail: {answer}"
    error: dict[str, Any] = answer["error"]
    return error


def credentials(client: Registered) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "client_secret": client.secret,
        "auth_method": client.auth_method,
    }


def _b64json(segment: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return value


def jwt_header_and_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _signature = token.split(".")
    return _b64json(header), _b64json(claims)


def metadata_of(deployment: Deployment) -> dict[str, Any]:
    response = httpx.get(f"{deployment.issuer}/.well-known/oauth-authorization-server")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


# -- npm openid-client -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["basic", "post"])
def test_openid_client_grant_introspect_revoke(deployment: Deployment, kind: str) -> None:
    client = deployment.clients[kind]
    answer = peer_ok(
        "openid_client_check.mjs",
        issuer=deployment.issuer,
        **credentials(client),
        scope="read",
        resource=API,
        revoke=True,
    )
    assert answer["metadata"]["issuer"] == deployment.issuer
    assert answer["metadata"]["token_endpoint"] == f"{deployment.issuer}/token"
    token = answer["token"]
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == "read"
    assert token["expires_in"] == 3600
    _, claims = jwt_header_and_claims(token["access_token"])
    assert claims["aud"] == API
    assert claims["client_id"] == client.client_id

    introspection = answer["introspection"]
    assert introspection["active"] is True
    assert introspection["client_id"] == client.client_id
    assert introspection["scope"] == "read"
    assert introspection["aud"] == API
    assert introspection["iss"] == deployment.issuer
    assert answer["revoked"] is True
    assert answer["introspection_after_revocation"] == {"active": False}


def test_openid_client_openid_configuration_discovery(deployment: Deployment) -> None:
    # algorithm 'oidc' reads /.well-known/openid-configuration instead of RFC 8414's document.
    answer = peer_ok(
        "openid_client_check.mjs",
        issuer=deployment.issuer,
        **credentials(deployment.clients["basic"]),
        algorithm="oidc",
        scope="write",
    )
    assert answer["metadata"] == metadata_of(deployment)
    assert answer["token"]["scope"] == "write"


def test_openid_client_wrong_secret_with_basic_gets_the_challenge(deployment: Deployment) -> None:
    client = dataclasses.replace(deployment.clients["basic"], secret="not-the-secret-0123456789")
    error = peer_error("openid_client_check.mjs", issuer=deployment.issuer, **credentials(client))
    # RFC 6749 §5.2: 401 and a WWW-Authenticate challenge for a client that tried Basic;
    # openid-client parses the challenge and reports it rather than the body.
    assert error["stage"] == "client_credentials"
    assert error["name"] == "WWWAuthenticateChallengeError"
    assert error["code"] == "OAUTH_WWW_AUTHENTICATE_CHALLENGE"
    assert error["status"] == 401
    assert error["challenges"] == [
        {"scheme": "basic", "parameters": {"realm": deployment.issuer, "charset": "UTF-8"}}
    ]


def test_openid_client_wrong_secret_with_post_is_invalid_client(deployment: Deployment) -> None:
    client = dataclasses.replace(deployment.clients["post"], secret="not-the-secret-0123456789")
    error = peer_error("openid_client_check.mjs", issuer=deployment.issuer, **credentials(client))
    assert error["name"] == "ResponseBodyError"
    assert error["code"] == "OAUTH_RESPONSE_BODY_ERROR"
    assert error["error"] == "invalid_client"
    assert error["status"] == 400


def test_openid_client_scope_not_allowed(deployment: Deployment) -> None:
    error = peer_error(
        "openid_client_check.mjs",
        issuer=deployment.issuer,
        **credentials(deployment.clients["basic"]),
        scope="read admin",
    )
    assert error["name"] == "ResponseBodyError"
    assert error["error"] == "invalid_scope"
    assert error["status"] == 400


# -- npm oauth4webapi ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["basic", "post"])
def test_oauth4webapi_token_passes_rfc9068_validation(deployment: Deployment, kind: str) -> None:
    client = deployment.clients[kind]
    answer = peer_ok(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        **credentials(client),
        scope="read",
        resource=API,
        expected_audience=API,
    )
    token = answer["token"]
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == "read"
    header, _ = jwt_header_and_claims(token["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = answer["claims"]
    assert claims["iss"] == deployment.issuer
    assert claims["aud"] == API
    assert claims["client_id"] == claims["sub"] == client.client_id
    assert claims["scope"] == "read"
    assert claims["exp"] - claims["iat"] == token["expires_in"]
    assert isinstance(claims["jti"], str) and claims["jti"]


def test_oauth4webapi_rejects_a_token_for_another_audience(deployment: Deployment) -> None:
    error = peer_error(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        **credentials(deployment.clients["basic"]),
        resource=API,
        expected_audience=ELSEWHERE,
    )
    assert error["stage"] == "validate_jwt_access_token"
    assert error["name"] == "OperationProcessingError"
    assert error["code"] == "OAUTH_JWT_CLAIM_COMPARISON_FAILED"
    assert '"aud"' in error["message"]


def test_oauth4webapi_accepts_each_audience_of_a_multi_audience_token(
    deployment: Deployment,
) -> None:
    # No resource asked for: the token is for every API the client may call.
    answer = peer_ok(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        **credentials(deployment.clients["basic"]),
        expected_audience=REPORTS,
    )
    assert answer["claims"]["aud"] == [API, REPORTS]
    assert answer["claims"]["scope"] == "read write"
    again = peer_ok(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        token=answer["token"]["access_token"],
        expected_audience=API,
    )
    assert again["claims"]["jti"] == answer["claims"]["jti"]


def test_oauth4webapi_rejects_a_tampered_token(deployment: Deployment) -> None:
    flow = ClientCredentialsFlow(
        deployment.clients["basic"].client_id,
        deployment.clients["basic"].secret,
        issuer=deployment.issuer,
        resource=API,
    )
    header, payload, signature = flow.get_token_sync(["read"]).access_token.split(".")
    claims = _b64json(payload)
    claims["scope"] = "read admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    error = peer_error(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        token=f"{header}.{forged}.{signature}",
        expected_audience=API,
    )
    assert error["stage"] == "validate_jwt_access_token"
    assert error["message"] == "JWT signature verification failed"


def _token_from_authkestra(deployment: Deployment) -> str:
    client = deployment.clients["post"]
    flow = ClientCredentialsFlow(
        client.client_id,
        client.secret,
        issuer=deployment.issuer,
        auth_method=client.auth_method,
        audience=API,
    )
    return flow.get_token_sync(["read"]).access_token


def _token_from_authlib(deployment: Deployment) -> str:
    client = deployment.clients["basic"]
    with OAuth2Session(client.client_id, client.secret, scope="read") as session:
        token = session.fetch_token(
            deployment.server.token_url, grant_type="client_credentials", resource=API
        )
    return str(token["access_token"])


@pytest.mark.parametrize(
    "obtain", [_token_from_authkestra, _token_from_authlib], ids=["authkestra", "authlib"]
)
def test_oauth4webapi_validates_tokens_other_clients_obtained(
    deployment: Deployment, obtain: Callable[[Deployment], str]
) -> None:
    answer = peer_ok(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        token=obtain(deployment),
        expected_audience=API,
    )
    assert answer["claims"]["aud"] == API
    assert answer["claims"]["scope"] == "read"


def test_oauth4webapi_target_not_allowed(deployment: Deployment) -> None:
    error = peer_error(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        **credentials(deployment.clients["post"]),
        resource=REPORTS,
    )
    assert error["stage"] == "client_credentials"
    assert error["name"] == "ResponseBodyError"
    assert error["error"] == "invalid_target"
    assert error["status"] == 400


def test_oauth4webapi_validates_another_signing_algorithm(
    deployments: dict[str, Deployment],
) -> None:
    deployment = deployments[OTHER_ALG]
    answer = peer_ok(
        "oauth4webapi_check.mjs",
        issuer=deployment.issuer,
        **credentials(deployment.clients["basic"]),
        resource=API,
        expected_audience=API,
    )
    header, _ = jwt_header_and_claims(answer["token"]["access_token"])
    assert header["alg"] == OTHER_ALG
    assert header["typ"] == "at+jwt"
    assert answer["metadata"]["access_token_signing_alg_values_supported"] == [OTHER_ALG]
    assert answer["claims"]["client_id"] == deployment.clients["basic"].client_id


# -- Python Authlib --------------------------------------------------------------------

AUTHLIB_SESSIONS = {"requests": OAuth2Session, "httpx": OAuth2Client}


@pytest.mark.parametrize("kind", ["basic", "post"])
@pytest.mark.parametrize("session_kind", list(AUTHLIB_SESSIONS))
def test_authlib_fetch_introspect_revoke(
    deployment: Deployment, kind: str, session_kind: str
) -> None:
    client = deployment.clients[kind]
    metadata = metadata_of(deployment)
    with AUTHLIB_SESSIONS[session_kind](
        client.client_id,
        client.secret,
        scope="read",
        token_endpoint_auth_method=client.auth_method,
        # Authlib revokes with client_secret_basic unless told otherwise (introspection
        # follows token_endpoint_auth_method); our server takes the registered method only.
        revocation_endpoint_auth_method=client.auth_method,
    ) as session:
        token = session.fetch_token(
            metadata["token_endpoint"], grant_type="client_credentials", resource=API
        )
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "read"
        assert token["expires_in"] == 3600
        access_token = token["access_token"]
        _, claims = jwt_header_and_claims(access_token)
        assert claims["client_id"] == client.client_id
        assert claims["aud"] == API

        active = session.introspect_token(metadata["introspection_endpoint"], token=access_token)
        assert active.status_code == 200
        assert active.json()["active"] is True
        assert active.json()["client_id"] == client.client_id

        revoked = session.revoke_token(
            metadata["revocation_endpoint"], token=access_token, token_type_hint="access_token"
        )
        assert revoked.status_code == 200

        after = session.introspect_token(metadata["introspection_endpoint"], token=access_token)
        assert after.status_code == 200
        assert after.json() == {"active": False}


@pytest.mark.parametrize("kind", ["basic", "post"])
def test_authlib_wrong_secret_is_invalid_client(deployment: Deployment, kind: str) -> None:
    client = deployment.clients[kind]
    with (
        OAuth2Session(
            client.client_id,
            "not-the-secret-0123456789",
            token_endpoint_auth_method=client.auth_method,
        ) as session,
        pytest.raises(AuthlibOAuthError) as info,
    ):
        session.fetch_token(deployment.server.token_url, grant_type="client_credentials")
    assert info.value.error == "invalid_client"


@pytest.mark.xfail(
    strict=True,
    raises=ValueError,
    reason=(
        "Authlib: '\"response_types_supported\" is required' -- it takes our empty array"
        " (RFC 8414 §2 REQUIRED member; this server has no authorization endpoint) for none"
    ),
)
def test_authlib_validates_our_rfc8414_metadata(deployment: Deployment) -> None:
    AuthorizationServerMetadata(metadata_of(deployment)).validate()


# -- our own ClientCredentialsFlow -----------------------------------------------------


def flow_for(deployment: Deployment, kind: str, **options: Any) -> ClientCredentialsFlow:
    client = deployment.clients[kind]
    return ClientCredentialsFlow(
        client.client_id,
        options.pop("secret", client.secret),
        issuer=deployment.issuer,
        auth_method=options.pop("auth_method", client.auth_method),
        **options,
    )


@pytest.mark.parametrize("kind", ["basic", "post"])
def test_flow_discovers_our_server(deployment: Deployment, kind: str) -> None:
    flow = flow_for(deployment, kind)
    token = flow.get_token_sync(["read"])
    assert token.token_type == "Bearer"
    assert token.scopes == ("read",)
    assert token.expires_in == 3600
    assert flow.token_url == deployment.server.token_url
    assert flow.metadata is not None and flow.metadata.issuer == deployment.issuer
    header, claims = jwt_header_and_claims(token.access_token)
    assert header["typ"] == "at+jwt"
    assert claims["client_id"] == deployment.clients[kind].client_id


def test_flow_async(deployment: Deployment) -> None:
    flow = flow_for(deployment, "post")
    token = anyio.run(flow.get_token, ["read", "write"])
    assert token.scopes == ("read", "write")


def test_flow_without_scopes_gets_the_clients_scopes(deployment: Deployment) -> None:
    token = flow_for(deployment, "basic").get_token_sync()
    assert token.scopes == ("read", "write")
    _, claims = jwt_header_and_claims(token.access_token)
    assert claims["aud"] == [API, REPORTS]


@pytest.mark.parametrize("parameter", ["resource", "audience"])
def test_flow_target_becomes_the_aud_claim(deployment: Deployment, parameter: str) -> None:
    token = flow_for(deployment, "basic", **{parameter: REPORTS}).get_token_sync(["read"])
    _, claims = jwt_header_and_claims(token.access_token)
    assert claims["aud"] == REPORTS


@pytest.mark.parametrize(("kind", "status"), [("basic", 401), ("post", 400)])
def test_flow_wrong_secret_is_invalid_client(
    deployment: Deployment, kind: str, status: int
) -> None:
    flow = flow_for(deployment, kind, secret="not-the-secret-0123456789")
    with pytest.raises(InvalidClient) as info:
        flow.get_token_sync(["read"])
    assert info.value.status_code == status
    assert "not-the-secret" not in str(info.value) and "not-the-secret" not in repr(info.value)


def test_flow_wrong_auth_method_is_invalid_client(deployment: Deployment) -> None:
    # The client is registered for client_secret_basic: its right secret in the body is refused.
    flow = flow_for(deployment, "basic", auth_method="client_secret_post")
    with pytest.raises(InvalidClient) as info:
        flow.get_token_sync(["read"])
    assert info.value.status_code == 400


def test_flow_scope_not_allowed_is_invalid_scope(deployment: Deployment) -> None:
    with pytest.raises(InvalidScope) as info:
        flow_for(deployment, "basic").get_token_sync(["read", "admin"])
    assert info.value.error == "invalid_scope"
    assert info.value.status_code == 400


@pytest.mark.parametrize("parameter", ["resource", "audience"])
def test_flow_target_not_allowed_is_invalid_target(deployment: Deployment, parameter: str) -> None:
    flow = flow_for(deployment, "post", **{parameter: ELSEWHERE})
    with pytest.raises(InvalidTarget) as info:
        flow.get_token_sync(["read"])
    assert info.value.error == "invalid_target"
    assert info.value.status_code == 400
