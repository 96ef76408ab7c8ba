"""Hostile and malformed requests: every one gets a JSON OAuth error (never a 5xx or a page).

Garbage tokens at introspection and revocation are not errors: RFC 7662 answers
``{"active": false}`` and RFC 7009 answers 200.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from authkestra._jose.signing import jws_registry
from tests.server.harness import (
    InProcessServer,
    assert_no_such_path,
    assert_oauth_error,
    b64url,
    jose_part,
)

FORM = "application/x-www-form-urlencoded"
GRANT = b"grant_type=client_credentials"


@pytest.fixture(scope="module")
def hostile_server(
    tmp_path_factory: pytest.TempPathFactory, store_template: Path
) -> Iterator[InProcessServer]:
    # Bodies up to 256 KB, so that a 100 KB token reaches the token check.
    server = InProcessServer(
        tmp_path_factory.mktemp("hostile"), template=store_template, max_body_bytes=256 * 1024
    )
    yield server
    server.close()


@pytest.fixture(scope="module")
def default_server(
    tmp_path_factory: pytest.TempPathFactory, store_template: Path
) -> Iterator[InProcessServer]:
    server = InProcessServer(tmp_path_factory.mktemp("default"), template=store_template)
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(hostile_server: InProcessServer) -> tuple[str, str]:
    return hostile_server.add_client("svc-hostile", "right-secret-0123456789")


@pytest.fixture(scope="module")
def post_client(hostile_server: InProcessServer) -> tuple[str, str]:
    return hostile_server.add_client(
        "svc-hostile-post", "post-secret-0123456789", auth_method="client_secret_post"
    )


def basic(user: bytes | str, password: bytes | str = b"x") -> str:
    user = user.encode() if isinstance(user, str) else user
    password = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(user + b":" + password).decode("ascii")


VALID_BASIC = basic("svc-hostile", "right-secret-0123456789")


@dataclasses.dataclass
class Case:
    """One request: what is sent, and the error it must get (None: any OAuth error)."""

    name: str
    body: bytes | None = GRANT
    headers: dict[str, Any] = dataclasses.field(default_factory=dict)
    content_type: str | None = FORM
    method: str = "POST"
    path: str = "/token"
    error: str | None = None
    status: int | None = None
    chunked: bool = False


def _big(n: int) -> bytes:
    return b"grant_type=client_credentials&pad=" + b"a" * n


CASES = [
    # -- the body: type, size, encoding
    Case(
        "text/plain",
        content_type="text/plain",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "no content type",
        content_type=None,
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "json body",
        body=b'{"grant_type": "client_credentials"}',
        content_type="application/json",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "json labelled as a form",
        body=b'{"grant_type": "client_credentials"}',
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "multipart",
        body=b'--b\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--b--\r\n',
        content_type="multipart/form-data; boundary=b",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "form type as a parameter",
        content_type="text/plain; x=application/x-www-form-urlencoded",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "gzip body",
        body=gzip.compress(GRANT),
        headers={"Authorization": VALID_BASIC, "Content-Encoding": "gzip"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "oversized with Content-Length",
        body=_big(300_000),
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=413,
    ),
    Case(
        "oversized chunked",
        body=_big(300_000),
        chunked=True,
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=413,
    ),
    Case(
        "Content-Length not a number",
        headers={"Authorization": VALID_BASIC, "Content-Length": "abc"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Content-Length superscript digit",
        headers={"Authorization": VALID_BASIC, "Content-Length": b"\xb2"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Content-Length negative",
        headers={"Authorization": VALID_BASIC, "Content-Length": "-1"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Content-Length huge",
        headers={"Authorization": VALID_BASIC, "Content-Length": "9" * 40},
        error="invalid_request",
        status=413,
    ),
    Case(
        "invalid UTF-8",
        body=b"grant_type=client_credentials&scope=\xff\xfe",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "overlong UTF-8",
        body=b"grant_type=client_credentials&scope=\xc0\xaf",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "percent-encoded invalid UTF-8",
        body=b"grant_type=client_credentials&scope=%ff",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "percent-encoded surrogate",
        body=b"grant_type=client_credentials&scope=%ed%a0%80",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "invalid percent escape",
        body=b"grant_type=%zz",
        headers={"Authorization": VALID_BASIC},
        error="unsupported_grant_type",
        status=400,
    ),
    Case(
        "empty body",
        body=b"",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "only separators",
        body=b"&&&===&",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "parameters in the query only",
        body=b"",
        path="/token?grant_type=client_credentials",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "NUL in grant_type",
        body=b"grant_type=client_credentials%00",
        headers={"Authorization": VALID_BASIC},
        error="unsupported_grant_type",
        status=400,
    ),
    Case(
        "raw NUL in the body",
        body=b"grant_type=client_credentials\x00",
        headers={"Authorization": VALID_BASIC},
        error="unsupported_grant_type",
        status=400,
    ),
    Case(
        "NUL in scope",
        body=GRANT + b"&scope=read%00",
        headers={"Authorization": VALID_BASIC},
        error="invalid_scope",
        status=400,
    ),
    Case(
        "NUL in resource",
        body=GRANT + b"&resource=https://api.example.test/%00",
        headers={"Authorization": VALID_BASIC},
        error="invalid_target",
        status=400,
    ),
    Case(
        "very long parameter name",
        body=GRANT + b"&" + b"n" * 15_000 + b"=1",
        error="invalid_client",
        status=400,
    ),
    Case("many parameters", body=GRANT + b"&a=1" * 3000, error="invalid_client", status=400),
    # -- repeated parameters (RFC 6749 §3.2)
    Case(
        "repeated grant_type",
        body=GRANT + b"&" + GRANT,
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "repeated scope",
        body=GRANT + b"&scope=read&scope=read",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "repeated client_id",
        body=GRANT
        + b"&client_id=svc-hostile-post&client_id=svc-hostile-post&client_secret=post-secret-0123456789",
        error="invalid_request",
        status=400,
    ),
    Case(
        "repeated client_secret",
        body=GRANT
        + b"&client_id=svc-hostile-post&client_secret=post-secret-0123456789&client_secret=post-secret-0123456789",
        error="invalid_request",
        status=400,
    ),
    Case(
        "client_id in header and twice in body",
        body=GRANT + b"&client_id=svc-hostile&client_id=svc-hostile",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    # -- the Basic header
    Case(
        "Basic not base64",
        headers={"Authorization": "Basic !!!not-base64!!!"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Basic base64 with junk",
        headers={"Authorization": "Basic c3ZjOng=junk"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Basic without a colon",
        headers={"Authorization": "Basic " + base64.b64encode(b"svc-hostile").decode()},
        error="invalid_request",
        status=400,
    ),
    Case("Basic alone", headers={"Authorization": "Basic"}, error="invalid_request", status=400),
    Case(
        "Basic and spaces",
        headers={"Authorization": "Basic     "},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Basic lower case, empty",
        headers={"Authorization": "basic "},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Basic non-UTF-8 inside",
        headers={"Authorization": basic(b"svc\xff\xfe", b"\xc3")},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Basic Latin-1 header bytes",
        headers={"Authorization": b"Basic \xc3\xa9\xff"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Basic percent-encoded invalid UTF-8",
        headers={"Authorization": basic("svc%ff", "x")},
        error="invalid_request",
        status=400,
    ),
    Case(
        "Basic invalid percent escape",
        headers={"Authorization": basic("svc%zz", "x%")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic empty client id",
        headers={"Authorization": basic("", "secret")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic very long client id",
        headers={"Authorization": basic("a" * 10_000, "x")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic client id of 129 characters",
        headers={"Authorization": basic("a" * 129, "x")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic control character in client id",
        headers={"Authorization": basic("svc-hostile\x01", "x")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic newline in client id",
        headers={"Authorization": basic("svc-hostile%0A", "right-secret-0123456789")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic DEL in client id",
        headers={"Authorization": basic("svc-hostile\x7f", "x")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic NUL in client id",
        headers={"Authorization": basic("svc-hostile%00", "right-secret-0123456789")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic raw NUL in client id",
        headers={"Authorization": basic(b"svc-hostile\x00", b"right-secret-0123456789")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic NUL in secret",
        headers={"Authorization": basic("svc-hostile", "right-secret-0123456789%00")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic non-ASCII secret",
        headers={"Authorization": basic("svc-hostile", "s%C3%A9cret")},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Basic huge",
        headers={"Authorization": basic("svc", "x" * 100_000)},
        error="invalid_request",
        status=431,
    ),
    Case(
        "Basic large",
        headers={"Authorization": basic("svc", "x" * 10_000)},
        error="invalid_client",
        status=401,
    ),
    Case(
        "Bearer instead of Basic",
        headers={"Authorization": "Bearer abc"},
        error="invalid_client",
        status=400,
    ),
    Case(
        "Basic with a tab",
        headers={"Authorization": "Basic\t" + VALID_BASIC[6:]},
        error="invalid_client",
        status=400,
    ),
    # -- client ids in the body
    Case(
        "long client id in the body",
        body=GRANT + b"&client_id=" + b"a" * 10_000 + b"&client_secret=x",
        error="invalid_client",
        status=400,
    ),
    Case(
        "control character in body client id",
        body=GRANT + b"&client_id=svc-hostile-post%01&client_secret=post-secret-0123456789",
        error="invalid_client",
        status=400,
    ),
    Case(
        "NUL in body client id",
        body=GRANT + b"&client_id=svc-hostile-post%00&client_secret=post-secret-0123456789",
        error="invalid_client",
        status=400,
    ),
    Case(
        "secret without a client id",
        body=GRANT + b"&client_secret=post-secret-0123456789",
        error="invalid_client",
        status=400,
    ),
    # -- methods and paths
    Case(
        "GET /token",
        method="GET",
        body=None,
        content_type=None,
        error="invalid_request",
        status=405,
    ),
    Case(
        "PUT /token",
        method="PUT",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=405,
    ),
    Case(
        "DELETE /token",
        method="DELETE",
        body=None,
        content_type=None,
        error="invalid_request",
        status=405,
    ),
    Case("PATCH /token", method="PATCH", error="invalid_request", status=405),
    Case(
        "GET /introspect",
        method="GET",
        path="/introspect",
        body=None,
        content_type=None,
        error="invalid_request",
        status=405,
    ),
    Case(
        "DELETE /revoke",
        method="DELETE",
        path="/revoke",
        body=None,
        content_type=None,
        error="invalid_request",
        status=405,
    ),
    Case("POST /jwks.json", path="/jwks.json", error="invalid_request", status=405),
    # -- headers
    Case("huge header", headers={"X-Padding": "a" * 200_000}, error="invalid_request", status=431),
    Case(
        "headers just over 16 KiB",
        headers={"Authorization": VALID_BASIC, "X-Padding": "a" * 16_400},
        error="invalid_request",
        status=431,
    ),
    # -- the query string: never read, and refused (a URL is logged, credentials must not be)
    Case(
        "a secret in the query",
        path="/token?client_secret=post-secret-0123456789",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "any query at /token",
        path="/token?x=1",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "an empty query name",
        path="/token?=",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "introspect: a query",
        path="/introspect?token=x",
        body=b"token=x",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "revoke: a query",
        path="/revoke?client_id=svc-hostile",
        body=b"token=x",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "thousands of headers",
        headers={f"X-H{i}": "v" for i in range(2000)},
        error="invalid_client",
        status=400,
    ),
    # -- introspection and revocation get the same strictness
    Case(
        "introspect: text/plain",
        path="/introspect",
        body=b"token=x",
        content_type="text/plain",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "introspect: no token",
        path="/introspect",
        body=b"",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "introspect: empty token",
        path="/introspect",
        body=b"token=",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "introspect: repeated token",
        path="/introspect",
        body=b"token=a&token=b",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "introspect: invalid UTF-8",
        path="/introspect",
        body=b"token=\xff",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "introspect: oversized chunked",
        path="/introspect",
        body=b"token=" + b"a" * 300_000,
        chunked=True,
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=413,
    ),
    Case(
        "introspect: bad Basic",
        path="/introspect",
        body=b"token=x",
        headers={"Authorization": "Basic ???"},
        error="invalid_request",
        status=400,
    ),
    Case(
        "introspect: no client",
        path="/introspect",
        body=b"token=x",
        error="invalid_client",
        status=400,
    ),
    Case(
        "revoke: json",
        path="/revoke",
        body=b'{"token": "x"}',
        content_type="application/json",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "revoke: no token",
        path="/revoke",
        body=b"token_type_hint=access_token",
        headers={"Authorization": VALID_BASIC},
        error="invalid_request",
        status=400,
    ),
    Case(
        "revoke: wrong secret",
        path="/revoke",
        body=b"token=x",
        headers={"Authorization": basic("svc-hostile", "wrong")},
        error="invalid_client",
        status=401,
    ),
]


UNKNOWN_PATHS = [
    Case("unknown path", path="/admin", status=404),
    Case(
        "root",
        method="GET",
        path="/",
        body=None,
        content_type=None,
        status=404,
    ),
    Case(
        "token with a slash",
        path="/token/",
        headers={"Authorization": VALID_BASIC},
        status=404,
    ),
    Case(
        "percent-encoded junk path",
        method="GET",
        path="/%ff%00",
        body=None,
        content_type=None,
        status=404,
    ),
    Case(
        "path traversal",
        method="GET",
        path="/../../etc/passwd",
        body=None,
        content_type=None,
        status=404,
    ),
    Case(
        "unknown well-known",
        method="GET",
        path="/.well-known/unknown",
        body=None,
        content_type=None,
        status=404,
    ),
]


def _send(server: InProcessServer, case: Case) -> httpx.Response:
    headers: dict[str, Any] = {}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    headers.update(case.headers)
    content: Any = case.body
    if case.chunked and case.body is not None:
        body = case.body

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        content = chunks()
    return server.request(case.method, case.path, content=content, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_request_gets_a_json_oauth_error(
    hostile_server: InProcessServer,
    client: tuple[str, str],
    post_client: tuple[str, str],
    case: Case,
) -> None:
    response = _send(hostile_server, case)
    assert_oauth_error(response, case.error, case.status)
    if case.chunked:
        assert "content-length" not in response.request.headers


@pytest.mark.parametrize("case", UNKNOWN_PATHS, ids=[c.name for c in UNKNOWN_PATHS])
def test_a_path_not_served_is_a_json_404_that_is_no_oauth_error(
    hostile_server: InProcessServer, case: Case
) -> None:
    response = _send(hostile_server, case)
    assert_no_such_path(response)


def test_the_well_formed_twin_of_the_corpus_succeeds(
    hostile_server: InProcessServer, client: tuple[str, str], post_client: tuple[str, str]
) -> None:
    """The corpus is refused for what is wrong in it, not because the client cannot succeed."""
    ok = Case("valid", headers={"Authorization": VALID_BASIC})
    assert _send(hostile_server, ok).status_code == 200
    for content_type in (FORM + "; charset=UTF-8", "Application/X-WWW-Form-URLEncoded"):
        case = Case("type", content_type=content_type, headers={"Authorization": VALID_BASIC})
        assert _send(hostile_server, case).status_code == 200
    post = GRANT + b"&client_id=svc-hostile-post&client_secret=post-secret-0123456789"
    assert _send(hostile_server, Case("post", body=post)).status_code == 200
    large = Case("large header", headers={"Authorization": VALID_BASIC, "X-Padding": "a" * 15_000})
    assert _send(hostile_server, large).status_code == 200


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke"])
@pytest.mark.parametrize(
    "second", [VALID_BASIC, "Bearer x", basic("svc-hostile-post", "post-secret-0123456789")]
)
def test_two_authorization_headers_are_refused(
    hostile_server: InProcessServer, client: tuple[str, str], path: str, second: str
) -> None:
    body = GRANT if path == "/token" else b"token=x"
    response = hostile_server.request(
        "POST", path, content=body,
        headers=[("Content-Type", FORM), ("Authorization", VALID_BASIC), ("Authorization", second)],
    )  # fmt: skip
    assert_oauth_error(response, "invalid_request", 400)
    assert "one Authorization header" in response.json()["error_description"]


def test_default_body_limit_refuses_a_100_kb_introspection(
    default_server: InProcessServer,
) -> None:
    caller = default_server.add_client()
    response = default_server.form("/introspect", {"token": "a" * 100_000}, basic=caller)
    assert_oauth_error(response, "invalid_request", 413)


def test_rejections_leave_the_server_working(
    hostile_server: InProcessServer, client: tuple[str, str]
) -> None:
    for case in CASES[:20]:
        _send(hostile_server, case)
    assert hostile_server.token(client).status_code == 200
    assert hostile_server.get("/healthz").json()["status"] == "ok"


# -- garbage tokens at introspection and revocation -------------------------------------


def _jws(header: dict[str, Any], payload: bytes | dict[str, Any], signature: bytes = b"") -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ".".join([b64url(json.dumps(header).encode()), b64url(body), b64url(signature)])


def garbage_tokens(server: InProcessServer, owner: str) -> dict[str, str]:
    """Tokens that are not valid tokens of this server, each for its own reason."""
    valid = server.access_token((owner, "right-secret-0123456789"))
    kid, alg, key = server.ctx.keys.signing_key()
    head, payload, signature = valid.split(".")
    claims = jose_part(valid, 1)
    foreign = ECKey.generate_key("P-256", {"kid": "foreign"}, private=True)
    public_pem = key.as_pem(private=False)
    hs_input = (
        f"{b64url(json.dumps({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid}).encode())}.{payload}"
    )
    hs_signature = hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest()
    forged_claims = dict(claims, scope="admin")

    def ours(changes: dict[str, Any], **header: Any) -> str:
        return server.sign(server.claims_for(owner, **changes), **header)

    def ours_raw(payload_bytes: bytes, **header: Any) -> str:
        # Signed with the server's key by hand: joserfc would refuse to write these.
        protected = {"alg": alg, "kid": kid, "typ": "at+jwt", **header}
        signing_input = f"{b64url(json.dumps(protected).encode())}.{b64url(payload_bytes)}"
        algorithm = jws_registry(alg).get_alg(alg)
        return f"{signing_input}.{b64url(algorithm.sign(signing_input.encode(), key))}"

    return {
        "alg none": _jws({"alg": "none", "typ": "at+jwt", "kid": kid}, claims),
        "alg none, no signature part": _jws({"alg": "none", "typ": "at+jwt", "kid": kid}, claims)[
            :-1
        ],
        "truncated signature": valid[:-10],
        "truncated in the payload": valid[: len(head) + 1 + len(payload) // 2],
        "signature dropped": f"{head}.{payload}.",
        "signature of another token": f"{head}.{payload}.{server.access_token((owner, 'right-secret-0123456789')).split('.')[2]}",
        "forged claims, original signature": f"{head}.{b64url(json.dumps(forged_claims).encode())}.{signature}",
        "another issuer's key and kid": jwt.encode(
            {"alg": "ES256", "typ": "at+jwt", "kid": "foreign"}, claims, foreign
        ),
        "another key claiming our kid": jwt.encode(
            {"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims, foreign
        ),
        "HS256 keyed with our public key": f"{hs_input}.{b64url(hs_signature)}",
        "HS256 with a guessed key": jwt.encode(
            {"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims, OctKey.import_key(os.urandom(32))
        ),
        "unknown kid": _jws({"alg": alg, "typ": "at+jwt", "kid": "no-such-kid"}, claims, b"x" * 64),
        "no kid": _jws({"alg": alg, "typ": "at+jwt"}, claims, b"x" * 64),
        "kid not a string": _jws({"alg": alg, "typ": "at+jwt", "kid": 7}, claims, b"x" * 64),
        "typ JWT": ours({}, typ="JWT"),
        "header a list": _jws([1, 2], claims),  # type: ignore[arg-type]
        "header deeply nested": b64url(b"[" * 6000) + ".e30.",
        "header not JSON": "bm90IGpzb24.e30.c2ln",
        "header not base64": "!!!.e30.c2ln",
        "non-ASCII": "\u00e9\u00e9.\u00e9\u00e9.\u00e9\u00e9",
        "random bytes": b64url(os.urandom(40))
        + "."
        + b64url(os.urandom(40))
        + "."
        + b64url(os.urandom(40)),
        "raw random text": base64.b85encode(os.urandom(300)).decode(),
        "five parts (JWE shape)": "a.b.c.d.e",
        "two parts": f"{head}.{payload}",
        "dots only": "..",
        "a.b.c": "a.b.c",
        "spaces around": f" {valid} ",
        "100 KB": "A" * 100_000,
        "just over the token limit": f"{head}.{payload}.{signature}" + "A" * (8193 - len(valid)),
        "ours, another issuer": ours({"iss": "https://evil.example.test"}),
        "ours, expired": ours({"exp": claims["iat"] - 10, "iat": claims["iat"] - 100}),
        "ours, exp a float": ours({"exp": float(claims["exp"])}),
        "ours, exp true": ours({"exp": True}),
        "ours, exp a string": ours({"exp": str(claims["exp"])}),
        "ours, no exp": ours({"exp": None}),
        "ours, no jti": ours({"jti": None}),
        "ours, jti a number": ours({"jti": 12}),
        "ours, no client_id": ours({"client_id": None}),
        "ours, client_id a list": ours({"client_id": [owner]}),
        "ours, unknown client": ours({"client_id": "nobody", "sub": "nobody"}),
        "ours, unknown crit header": ours_raw(
            json.dumps(server.claims_for(owner)).encode(),
            crit=["x-must-know"],
            **{"x-must-know": 1},
        ),
        "ours, payload not JSON": ours_raw(b"not json"),
        "ours, payload a list": ours_raw(b"[1, 2, 3]"),
        "ours, payload empty": ours_raw(b""),
    }


@pytest.fixture(scope="module")
def garbage(hostile_server: InProcessServer, client: tuple[str, str]) -> dict[str, str]:
    return garbage_tokens(hostile_server, client[0])


GARBAGE_NAMES = [
    "alg none",
    "alg none, no signature part",
    "truncated signature",
    "truncated in the payload",
    "signature dropped",
    "signature of another token",
    "forged claims, original signature",
    "another issuer's key and kid",
    "another key claiming our kid",
    "HS256 keyed with our public key",
    "HS256 with a guessed key",
    "unknown kid",
    "no kid",
    "kid not a string",
    "typ JWT",
    "header a list",
    "header deeply nested",
    "header not JSON",
    "header not base64",
    "non-ASCII",
    "random bytes",
    "raw random text",
    "five parts (JWE shape)",
    "two parts",
    "dots only",
    "a.b.c",
    "spaces around",
    "100 KB",
    "just over the token limit",
    "ours, another issuer",
    "ours, expired",
    "ours, exp a float",
    "ours, exp true",
    "ours, exp a string",
    "ours, no exp",
    "ours, no jti",
    "ours, jti a number",
    "ours, no client_id",
    "ours, client_id a list",
    "ours, unknown client",
    "ours, unknown crit header",
    "ours, payload not JSON",
    "ours, payload a list",
    "ours, payload empty",
]


def test_garbage_names_cover_the_corpus(
    hostile_server: InProcessServer, client: tuple[str, str]
) -> None:
    assert sorted(GARBAGE_NAMES) == sorted(garbage_tokens(hostile_server, client[0]))


@pytest.mark.parametrize("name", GARBAGE_NAMES)
def test_garbage_token_introspects_inactive(
    hostile_server: InProcessServer, client: tuple[str, str], garbage: dict[str, str], name: str
) -> None:
    response = hostile_server.form("/introspect", {"token": garbage[name]}, basic=client)
    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("name", GARBAGE_NAMES)
def test_garbage_token_revocation_is_200(
    hostile_server: InProcessServer, client: tuple[str, str], garbage: dict[str, str], name: str
) -> None:
    response = hostile_server.form("/revoke", {"token": garbage[name]}, basic=client)
    assert response.status_code == 200, response.text
    assert response.content == b""


def test_the_valid_token_beside_the_garbage_is_active(
    hostile_server: InProcessServer, client: tuple[str, str], garbage: dict[str, str]
) -> None:
    token = hostile_server.access_token(client)
    assert hostile_server.introspect(token, client)["active"] is True
