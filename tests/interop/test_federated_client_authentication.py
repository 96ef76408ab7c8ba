"""Federated client authentication: a platform's token as the client's assertion.

A real ``authkestra serve`` trusts three third-party issuers:

- a Kubernetes-shaped cluster issuer (keys found through its discovery document), whose
  tokens npm ``jose`` mints shaped like projected service-account tokens;
- a GitHub-Actions-shaped issuer (keys at ``--jwks-url``, an audience of its own), whose
  tokens npm ``jose`` mints shaped like Actions OIDC tokens;
- npm ``oidc-provider``, whose RFC 9068 JWT access tokens (for the resource that is our
  server) are the assertions.

The platforms' discovery documents and key sets are served over loopback (the server
runs with the ``allow_insecure_jwks_uri`` test setting). Clients are bound to an issuer
and a subject with ``authkestra clients create --trusted-issuer --subject``, and our
``ClientCredentialsFlow`` sends the platform's token with ``client_assertion=``. Each
refusal is checked for its reason in the server's audit log, so a test cannot pass for
the wrong reason.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey

from authkestra import ClientCredentialsFlow, InvalidClient
from tests.interop.test_our_server_with_third_party_clients import peer_ok
from tests.support.authkestra_server import AuthkestraServer, cli
from tests.support.oidc_provider import OidcProvider, client

pytestmark = pytest.mark.interop

INSECURE = {"AUTHKESTRA_SERVER_ALLOW_INSECURE_JWKS_URI": "true"}
CLUSTER_KEY = RSAKey.generate_key(2048, {"kid": "cluster-2026"}, private=True)
CLUSTER_NEXT_KEY = RSAKey.generate_key(2048, {"kid": "cluster-2027"}, private=True)
ACTIONS_KEY = RSAKey.generate_key(2048, {"kid": "actions-1"}, private=True)
#: Same kid as the cluster's key, not the cluster's.
IMPOSTOR_KEY = RSAKey.generate_key(2048, {"kid": "cluster-2026"}, private=True)
SERVICE_ACCOUNT = "system:serviceaccount:payments:reporter"
WORKFLOW = "repo:acme/payments:ref:refs/heads/main"
ACTIONS_AUDIENCE = "https://authkestra.acme.example"


def public_jwk(key: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.kid, "use": "sig", "alg": "RS256"}


class Platforms(http.server.ThreadingHTTPServer):
    """The platforms' own endpoints: the cluster's discovery document and key set, and
    the Actions issuer's key set; anything else is a 404."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PlatformHandler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.cluster_keys = [public_jwk(CLUSTER_KEY)]
        self.hits: dict[str, int] = {}

    @property
    def cluster(self) -> str:
        return f"{self.base}/cluster"

    @property
    def actions(self) -> str:
        return f"{self.base}/actions"

    def answer(self, path: str) -> dict[str, Any] | None:
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/cluster/.well-known/openid-configuration":
            return {
                "issuer": self.cluster,
                "jwks_uri": f"{self.cluster}/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        if path == "/cluster/openid/v1/jwks":
            return {"keys": self.cluster_keys}
        if path == "/actions/.well-known/jwks":
            return {"keys": [public_jwk(ACTIONS_KEY)]}
        return None


class _PlatformHandler(http.server.BaseHTTPRequestHandler):
    server: Platforms

    def do_GET(self) -> None:
        document = self.server.answer(self.path)
        status = 200 if document is not None else 404
        body = json.dumps(document if status == 200 else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@dataclasses.dataclass
class Deployment:
    server: AuthkestraServer
    platforms: Platforms
    provider: OidcProvider

    def audit_reasons(self) -> list[str]:
        """The reasons of every refused authentication so far, from the audit log."""
        reasons = []
        for line in self.server.log_path.read_text().splitlines():
            if "authentication_refused" in line and "reason=" in line:
                reasons.append(line.split("reason=", 1)[1].split(" address=")[0].strip('"'))
        return reasons


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    platforms = Platforms()
    threading.Thread(target=platforms.serve_forever, daemon=True).start()
    server = AuthkestraServer(extra_env=INSECURE, log_level="info")
    provider = None
    try:
        provider = OidcProvider(
            {
                "clients": [client("workload-a", "a-secret-of-workload-a", scope="read")],
                "scopes": ["read"],
                "resources": {
                    server.issuer: {"scope": "read", "ttl": 300, "alg": "RS256", "format": "jwt"}
                },
            }
        )
        db = ("--db", server.db)
        cli("issuers", "add", "cluster", "--issuer", platforms.cluster, *db, env=INSECURE)
        cli(
            "issuers", "add", "actions", "--issuer", platforms.actions,
            "--jwks-url", f"{platforms.actions}/.well-known/jwks",
            "--audience", ACTIONS_AUDIENCE, "--max-lifetime", "600", *db, env=INSECURE,
        )  # fmt: skip
        cli("issuers", "add", "op", "--issuer", provider.issuer, *db, env=INSECURE)
        for name, issuer, subject in (
            ("reporter", "cluster", SERVICE_ACCOUNT),
            ("deployer", "actions", WORKFLOW),
            ("from-op", "op", "workload-a"),
        ):
            cli(
                "clients", "create", name, "--trusted-issuer", issuer, "--subject", subject,
                "--scope", "read", *db,
            )  # fmt: skip
        yield Deployment(server, platforms, provider)
    finally:
        if provider is not None:
            provider.stop()
        server.stop()
        platforms.shutdown()
        platforms.server_close()


def mint(key: Any, claims: dict[str, Any], **header: Any) -> str:
    """A token signed by npm jose with ``key`` (RS256, ``kid`` the key's unless given)."""
    header.setdefault("kid", key.kid)
    answer = peer_ok(
        "jose_mint.mjs",
        jwk={**key.as_dict(private=True), "kid": key.kid},
        alg="RS256",
        tokens=[{"header": header, "claims": claims}],
    )
    return str(answer["tokens"][0])


def service_account_token(d: Deployment, *, lifetime: int = 3600, **changes: Any) -> dict[str, Any]:
    """Claims shaped like a Kubernetes projected service-account token (1.29+: with jti)."""
    now = int(time.time())
    claims = {
        "aud": [d.server.issuer],
        "exp": now + lifetime,
        "iat": now,
        "nbf": now,
        "iss": d.platforms.cluster,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": "payments",
            "node": {"name": "node-1", "uid": str(uuid.uuid4())},
            "pod": {"name": "reporter-7c9f", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": "reporter", "uid": str(uuid.uuid4())},
        },
        "sub": SERVICE_ACCOUNT,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def actions_token(d: Deployment, **changes: Any) -> dict[str, Any]:
    """Claims shaped like a GitHub Actions OIDC token."""
    now = int(time.time())
    claims = {
        "jti": str(uuid.uuid4()),
        "sub": WORKFLOW,
        "aud": ACTIONS_AUDIENCE,
        "ref": "refs/heads/main",
        "sha": "9f3c1e0",
        "repository": "acme/payments",
        "repository_owner": "acme",
        "run_id": "7311",
        "event_name": "push",
        "job_workflow_ref": "acme/payments/.github/workflows/deploy.yml@refs/heads/main",
        "iss": d.platforms.actions,
        "nbf": now - 5,
        "exp": now + 300,
        "iat": now - 5,
    }
    claims.update(changes)
    return claims


def token_with(d: Deployment, client_id: str, assertion: str, tmp_path: Path) -> Any:
    """A token for ``client_id`` with ``assertion`` in the file the flow reads."""
    path = tmp_path / f"assertion-{uuid.uuid4().hex}"
    path.write_text(assertion)
    flow = ClientCredentialsFlow(
        client_id, client_assertion=path, token_url=d.server.token_url, scopes="read"
    )
    return flow.get_token_sync()


def refused(d: Deployment, client_id: str, assertion: str, _tmp_path: Path) -> str:
    """Assert the server refuses ``assertion`` with invalid_client; the audit log's reason.

    Sent as it is (our flow would not even send an expired assertion)."""
    before = len(d.audit_reasons())
    answer = httpx.post(
        d.server.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=30,
    )
    assert answer.status_code == 400, answer.text  # credentials in the body: 400 (§5.2)
    # One answer for every refusal: nothing tells the caller what was wrong.
    assert answer.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    reasons = d.audit_reasons()[before:]
    assert reasons, "the refusal was not audited"
    return reasons[0]


# -- accepted -----------------------------------------------------------------------------------


def test_a_kubernetes_service_account_token_authenticates_its_client(
    deployment: Deployment, tmp_path: Path
) -> None:
    token = token_with(
        deployment, "reporter", mint(CLUSTER_KEY, service_account_token(deployment)), tmp_path
    )
    assert token.scope == "read"
    claims = json.loads(base64.urlsafe_b64decode(token.access_token.split(".")[1] + "=="))
    assert claims["client_id"] == claims["sub"] == "reporter"  # the client's, not the pod's
    hits = deployment.platforms.hits
    assert hits["/cluster/.well-known/openid-configuration"] >= 1  # found by discovery


def test_a_github_actions_token_with_its_own_audience(
    deployment: Deployment, tmp_path: Path
) -> None:
    assertion = mint(ACTIONS_KEY, actions_token(deployment), typ="JWT")
    assert token_with(deployment, "deployer", assertion, tmp_path).scope == "read"
    assert "/actions/.well-known/openid-configuration" not in deployment.platforms.hits


def test_an_oidc_provider_access_token_authenticates_its_client(
    deployment: Deployment,
) -> None:
    """The whole chain: our flow gets a JWT from oidc-provider (for the resource that is
    our server) and presents it to our server as the assertion of ``from-op``."""
    upstream = ClientCredentialsFlow(
        "workload-a",
        "a-secret-of-workload-a",
        deployment.provider.token_url,
        resource=deployment.server.issuer,
    )
    calls: list[str] = []

    def platform() -> str:
        calls.append("fetched")
        return upstream.get_token_sync(["read"], force_refresh=True).access_token

    flow = ClientCredentialsFlow(
        "from-op", client_assertion=platform, token_url=deployment.server.token_url
    )
    first = flow.get_token_sync(["read"])
    second = flow.get_token_sync(["read"], force_refresh=True)
    assert first.access_token != second.access_token
    assert len(calls) == 2


def test_an_assertion_without_jti_can_be_used_until_it_expires(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Documented: nothing to remember it by (Kubernetes before 1.29 issues no jti)."""
    assertion = mint(CLUSTER_KEY, service_account_token(deployment, jti=None, lifetime=600))
    assert token_with(deployment, "reporter", assertion, tmp_path).access_token
    assert token_with(deployment, "reporter", assertion, tmp_path).access_token


def test_a_rotated_platform_key_is_fetched_for_its_new_kid(
    deployment: Deployment, tmp_path: Path
) -> None:
    platforms = deployment.platforms
    platforms.cluster_keys = [public_jwk(CLUSTER_KEY), public_jwk(CLUSTER_NEXT_KEY)]
    try:
        assertion = mint(CLUSTER_NEXT_KEY, service_account_token(deployment))
        deadline = time.monotonic() + 15  # an unknown kid refetches once per 10 s at most
        while True:
            try:
                token_with(deployment, "reporter", assertion, tmp_path)
                break
            except InvalidClient:
                assert time.monotonic() < deadline, deployment.audit_reasons()[-1]
                time.sleep(1)
                assertion = mint(CLUSTER_NEXT_KEY, service_account_token(deployment))
    finally:
        platforms.cluster_keys = [public_jwk(CLUSTER_KEY)]


# -- refused ------------------------------------------------------------------------------------


def test_a_replayed_assertion_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    assertion = mint(CLUSTER_KEY, service_account_token(deployment))
    assert token_with(deployment, "reporter", assertion, tmp_path).access_token
    assert "replayed" in refused(deployment, "reporter", assertion, tmp_path)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sub": "system:serviceaccount:payments:other"}, "subject is not the client's"),
        ({"aud": ["https://elsewhere.example"]}, "aud is not"),
        ({"aud": None}, "aud is not"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"exp": None}, "exp"),
        ({"nbf": int(time.time()) + 600}, "not valid yet"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) + 600}, "longer than 3600"),
        ({"exp": int(time.time()) + 7200}, "ahead"),
        ({"jti": 12}, "jti"),
    ],
)
def test_a_token_that_is_not_right_for_the_client_is_refused(
    deployment: Deployment, tmp_path: Path, changes: dict[str, Any], reason: str
) -> None:
    claims = service_account_token(deployment)
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    assert reason in refused(deployment, "reporter", mint(CLUSTER_KEY, claims), tmp_path)


def test_another_issuers_token_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    # A real Actions token for the subject of the reporter's binding: the wrong issuer.
    claims = actions_token(deployment, sub=SERVICE_ACCOUNT, aud=deployment.server.issuer)
    reason = refused(deployment, "reporter", mint(ACTIONS_KEY, claims), tmp_path)
    assert "not issued by trusted issuer 'cluster'" in reason


def test_an_actions_token_beyond_its_issuers_own_maximum_lifetime(
    deployment: Deployment, tmp_path: Path
) -> None:
    now = int(time.time())
    claims = actions_token(deployment, iat=now - 500, nbf=now - 500, exp=now + 300)  # 800 > 600
    assert "longer than 600" in refused(deployment, "deployer", mint(ACTIONS_KEY, claims), tmp_path)


def test_a_token_signed_by_another_key_with_the_clusters_kid(
    deployment: Deployment, tmp_path: Path
) -> None:
    assertion = mint(IMPOSTOR_KEY, service_account_token(deployment))
    assert "bad assertion signature" in refused(deployment, "reporter", assertion, tmp_path)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_algorithm_confusion_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    """HS256 "signed" with the cluster's public key as the HMAC secret, and alg none."""
    import hashlib
    import hmac

    claims = service_account_token(deployment)
    header = {"alg": "HS256", "kid": CLUSTER_KEY.kid, "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    public_pem = CLUSTER_KEY.as_pem(private=False)
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(signature)}"
    assert "not an asymmetric signature" in refused(deployment, "reporter", forged, tmp_path)
    unsigned_header = b64(json.dumps({"alg": "none"}).encode())
    unsigned = f"{unsigned_header}.{b64(json.dumps(claims).encode())}.c2ln"
    with pytest.raises(InvalidClient):  # refused as it is read, before any client
        token_with(deployment, "reporter", unsigned, tmp_path)


def test_a_client_of_one_issuer_is_not_authenticated_by_its_subject_elsewhere(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The deployer's binding is to the Actions issuer: a cluster token naming the
    workflow as its subject does not authenticate it."""
    claims = service_account_token(deployment, sub=WORKFLOW, aud=ACTIONS_AUDIENCE)
    reason = refused(deployment, "deployer", mint(CLUSTER_KEY, claims), tmp_path)
    assert "not issued by trusted issuer 'actions'" in reason


def test_a_client_with_keys_of_its_own_is_not_federated(
    deployment: Deployment, tmp_path: Path
) -> None:
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(CLUSTER_KEY)]}))
    cli(
        "clients", "create", "keyed", "--auth-method", "private_key_jwt", "--jwks", str(jwks),
        "--db", deployment.server.db,
    )  # fmt: skip
    claims = service_account_token(deployment)
    reason = refused(deployment, "keyed", mint(CLUSTER_KEY, claims), tmp_path)
    assert "bound to none" in reason


def test_an_issuer_that_cannot_be_reached_is_a_refusal_not_an_error(
    deployment: Deployment, tmp_path: Path
) -> None:
    cli(
        "issuers", "add", "down", "--issuer", f"{deployment.platforms.base}/down",
        "--db", deployment.server.db, env=INSECURE,
    )  # fmt: skip
    cli(
        "clients", "create", "stranded", "--trusted-issuer", "down", "--subject", "s",
        "--db", deployment.server.db,
    )  # fmt: skip
    claims = service_account_token(deployment, iss=f"{deployment.platforms.base}/down", sub="s")
    reason = refused(deployment, "stranded", mint(CLUSTER_KEY, claims), tmp_path)
    assert "no key of 'down'" in reason


# -- managing the issuers -----------------------------------------------------------------------


def test_issuers_are_listed_and_one_in_use_is_not_removed(deployment: Deployment) -> None:
    db = ("--db", deployment.server.db)
    listed = json.loads(cli("issuers", "list", "--format", "json", *db).stdout)
    by_name = {issuer["name"]: issuer for issuer in listed}
    assert by_name["actions"]["audience"] == ACTIONS_AUDIENCE
    assert by_name["actions"]["max_lifetime"] == 600
    assert by_name["cluster"]["jwks_url"] is None
    removed = cli("issuers", "remove", "cluster", *db, check=False)
    assert removed.returncode != 0
    assert "clients are bound to 'cluster'" in removed.stderr and "reporter" in removed.stderr
    shown = json.loads(cli("clients", "show", "reporter", "--format", "json", *db).stdout)
    assert shown["trusted_issuer"] == "cluster" and shown["subject"] == SERVICE_ACCOUNT


def test_adding_an_issuer_refuses_what_it_cannot_use(deployment: Deployment) -> None:
    db = ("--db", deployment.server.db)
    for args, said in (
        (("bad name!", "--issuer", "https://ok.example"), "name:"),
        (("plain", "--issuer", "http://issuer.example"), "must be https"),
        (("cluster", "--issuer", "https://other.example"), "trusted already"),
        (("again", "--issuer", deployment.platforms.cluster), "trusted already"),
        (("ttl", "--issuer", "https://t.example", "--max-lifetime", "5"), "max_lifetime"),
    ):
        result = cli("issuers", "add", *args, *db, env=INSECURE, check=False)
        assert result.returncode == 2, result.stderr
        assert f"authkestra: error: {said}" in result.stderr or (
            said in result.stderr and "authkestra: error:" in result.stderr
        )
    result = cli(
        "clients", "create", "orphan", "--trusted-issuer", "nowhere", "--subject", "s", *db,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "no trusted issuer 'nowhere'" in result.stderr


def test_the_admin_api_manages_issuers(tmp_path: Path) -> None:
    server = AuthkestraServer(admin=True, extra_env=INSECURE)
    try:
        token = server.admin_token()
        added = server.admin_request(
            "POST", "/admin/issuers", token,
            json={"name": "ci", "issuer": "http://127.0.0.1:9/ci", "max_lifetime": 900},
        )  # fmt: skip
        assert added.status_code == 201, added.text
        assert added.json()["max_lifetime"] == 900
        again = server.admin_request(
            "POST", "/admin/issuers", token, json={"name": "ci", "issuer": "http://127.0.0.1:9/x"}
        )
        assert again.status_code == 409
        hostile = server.admin_request("POST", "/admin/issuers", token, content=b"[1, 2")
        assert hostile.status_code == 400 and hostile.json()["error"] == "invalid_request"
        unknown = server.admin_request(
            "POST", "/admin/issuers", token, json={"name": "x", "issuer": "http://127.0.0.1:9/y",
                                                   "jwks": {}},
        )  # fmt: skip
        assert unknown.status_code == 400
        made = server.admin_request(
            "POST", "/admin/clients", token,
            json={"client_id": "ci-job", "trusted_issuer": "ci", "subject": "repo:a/b", "scope": "read"},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        assert made.json()["token_endpoint_auth_method"] == "private_key_jwt"
        assert "client_secret" not in made.json()
        busy = server.admin_request("DELETE", "/admin/issuers/ci", token)
        assert busy.status_code == 409
        assert server.admin_request("DELETE", "/admin/clients/ci-job", token).status_code == 204
        assert server.admin_request("DELETE", "/admin/issuers/ci", token).status_code == 204
        assert server.admin_request("DELETE", "/admin/issuers/ci", token).status_code == 404
        listed = server.admin_request("GET", "/admin/issuers", token).json()
        assert listed == {"issuers": []}
        openapi = httpx.get(f"{server.admin_url}/admin/openapi.json", timeout=10).json()
        assert "/admin/issuers/{name}" in openapi["paths"]
    finally:
        server.stop()
