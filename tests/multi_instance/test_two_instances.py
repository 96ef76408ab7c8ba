"""Two ``authkestra serve`` processes on one PostgreSQL and one Redis behave as one server.

Everything here runs for real: two server processes, the ``authkestra`` CLI
as a separate process, PostgreSQL and redis-server on loopback. What must hold
at once (revocations, anything read for the first time) is asserted at once;
what may lag by the servers' short caches (``cache_seconds``, 2 s) is polled
for, with a generous bound, never slept for.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from authkestra._jose.signing import jws_registry
from authkestra._protocol.client_assertion import JWT_BEARER
from tests.server.test_store_migrations import HEAD
from tests.support.authkestra_server import AuthkestraServer, cli
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer

T = TypeVar("T")

#: Behind one load balancer, every instance has the one public issuer.
ISSUER = "https://auth.multi-instance.example.test"
#: Every request of the suite comes from 127.0.0.1, and failed attempts are part of the
#: tests (polling through a server's client cache fails until it sees a new client): the
#: address limit must not get in the way, but in the test about it below.
COMMON_ENV = {
    "AUTHKESTRA_SERVER_ISSUER": ISSUER,
    "AUTHKESTRA_SERVER_MAX_FAILURES_PER_ADDRESS": "1000000",
}
LENIENT_ENV = COMMON_ENV
#: Far above the servers' 2 s caches: only a real failure to converge takes this long.
EVENTUALLY = 30.0


def eventually(check: Callable[[], T], what: str, timeout: float = EVENTUALLY) -> T:
    """The first truthy result of ``check()``, polled for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {result!r})")
        time.sleep(0.1)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def start_pair(
    db: str, redis: str | None, env: dict[str, str]
) -> tuple[AuthkestraServer, AuthkestraServer]:
    """Two servers on one store and one Redis (or none), started at the same time."""
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(AuthkestraServer, db, redis=redis, extra_env=env) for _ in range(2)]
    servers, errors = [], []
    for future in futures:
        try:
            servers.append(future.result())
        except Exception as exc:
            errors.append(exc)
    if errors:
        for server in servers:
            server.stop()
        raise errors[0]
    return servers[0], servers[1]


def run_cli(*args: str) -> str:
    """``authkestra ARGS``: its stdout (its stderr in the failure, if it fails)."""
    result = cli(*args, check=False)
    assert result.returncode == 0, f"authkestra {' '.join(args)}: {result.stderr}"
    return result.stdout


def create_client(server: AuthkestraServer, name: str, *args: str) -> tuple[str, str]:
    """``authkestra clients create`` on the store of ``server``: (client_id, secret).

    Each may introspect any token: the tests ask about each other's tokens."""
    out = run_cli(
        "clients", "create", name, *args, "--can-introspect", "any", "--format", "json",
        "--db", server.db,
    )  # fmt: skip
    document = json.loads(out)
    return document["client_id"], document["client_secret"]


def stop_all(*servers: AuthkestraServer) -> None:
    for server in servers:
        server.stop()


# -- HTTP -------------------------------------------------------------------------------


def request_token(server: AuthkestraServer, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )


def get_token(server: AuthkestraServer, client_id: str, secret: str) -> str:
    response = request_token(server, client_id, secret)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def introspect(server: AuthkestraServer, caller: tuple[str, str], token: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server.issuer}/introspect", data={"token": token}, auth=caller, timeout=10
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def revoke(server: AuthkestraServer, caller: tuple[str, str], token: str) -> None:
    response = httpx.post(f"{server.issuer}/revoke", data={"token": token}, auth=caller, timeout=10)
    assert response.status_code == 200, response.text


def jwks(server: AuthkestraServer) -> dict[str, Any]:
    response = httpx.get(f"{server.issuer}/jwks.json", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def kids(server: AuthkestraServer) -> list[str]:
    return [key["kid"] for key in jwks(server)["keys"]]


def header_kid(token: str) -> str:
    segment = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["kid"])


def works(server: AuthkestraServer, client_id: str, secret: str) -> bool:
    return request_token(server, client_id, secret).status_code == 200


def refused(server: AuthkestraServer, client_id: str, secret: str) -> bool:
    response = request_token(server, client_id, secret)
    return response.status_code == 401 and response.json()["error"] == "invalid_client"


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[tuple[AuthkestraServer, AuthkestraServer]]:
    """Instances A and B on one fresh PostgreSQL database and the session's Redis."""
    db = postgres_server.create_database(unique("pair").replace("-", "_"))
    a, b = start_pair(db, redis_server.url, LENIENT_ENV)
    yield a, b
    stop_all(a, b)


@pytest.fixture(scope="module")
def api(pair: tuple[AuthkestraServer, AuthkestraServer]) -> tuple[str, str]:
    """A resource server's client, which introspects the other clients' tokens."""
    return create_client(pair[0], unique("api"))


# -- the tests --------------------------------------------------------------------------


def test_both_use_postgresql_and_redis(pair: tuple[AuthkestraServer, AuthkestraServer]) -> None:
    for server in pair:
        assert server.db.startswith("postgresql://")
        ready = httpx.get(f"{server.issuer}/readyz", timeout=10).json()
        assert ready == {
            "status": "ready",
            "checks": {"store": "ok", "redis": "ok", "signing_key": "ok"},
        }
        metadata = httpx.get(
            f"{server.issuer}/.well-known/oauth-authorization-server", timeout=10
        ).json()
        assert metadata["issuer"] == ISSUER


def test_client_created_with_the_cli_works_on_both_without_a_restart(
    pair: tuple[AuthkestraServer, AuthkestraServer],
) -> None:
    a, b = pair
    client_id, secret = create_client(a, unique("svc"), "--scope", "read write")
    # Neither instance has looked this client up before: both read it from the store now.
    for server in (a, b):
        response = request_token(server, client_id, secret)
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == "read write"
        assert refused(server, client_id, secret + "x")


def test_client_created_after_both_refused_it_works_on_both_soon(
    pair: tuple[AuthkestraServer, AuthkestraServer],
) -> None:
    a, b = pair
    client_id = unique("late")
    for server in (a, b):  # both now remember "no such client" for cache_seconds
        assert refused(server, client_id, "not-yet-a-secret-0123456789")
    created_id, secret = create_client(a, client_id)
    assert created_id == client_id
    for server in (a, b):
        eventually(lambda s=server: works(s, client_id, secret), f"{client_id} accepted")


def test_token_from_a_is_active_on_b_and_revoked_on_b_is_inactive_on_a(
    pair: tuple[AuthkestraServer, AuthkestraServer], api: tuple[str, str]
) -> None:
    a, b = pair
    client_id, secret = create_client(a, unique("svc"), "--scope", "read")
    token = get_token(a, client_id, secret)

    on_b = introspect(b, api, token)
    assert on_b["active"] is True
    assert on_b["client_id"] == client_id
    assert on_b["iss"] == ISSUER
    assert on_b["scope"] == "read"
    assert introspect(a, api, token)["active"] is True

    revoke(b, (client_id, secret), token)
    # Revocations go through Redis: no cache in the way, inactive everywhere at once.
    assert introspect(a, api, token) == {"active": False}
    assert introspect(b, api, token) == {"active": False}

    # And the other way round.
    other = get_token(b, client_id, secret)
    assert introspect(a, api, other)["active"] is True
    revoke(a, (client_id, secret), other)
    assert introspect(b, api, other) == {"active": False}
    assert introspect(a, api, other) == {"active": False}


def test_both_publish_the_same_signing_keys(
    pair: tuple[AuthkestraServer, AuthkestraServer], api: tuple[str, str]
) -> None:
    a, b = pair
    eventually(lambda: jwks(a) == jwks(b), "A and B publish the same JWKS")
    client_id, secret = create_client(a, unique("svc"))
    for issuer, verifier in ((a, b), (b, a)):
        token = get_token(issuer, client_id, secret)
        # A resource server that fetched the JWKS from the other instance verifies it.
        claims = jwt.decode(token, KeySet.import_key_set(jwks(verifier))).claims
        assert claims["iss"] == ISSUER
        assert claims["client_id"] == client_id


def test_keys_rotated_with_the_cli_reach_both(
    pair: tuple[AuthkestraServer, AuthkestraServer],
    api: tuple[str, str],
    postgres_server: PostgresServer,
) -> None:
    a, b = pair
    client_id, secret = create_client(a, unique("svc"))
    old_tokens = [get_token(server, client_id, secret) for server in (a, b)]
    old_kids = {header_kid(token) for token in old_tokens}

    out = run_cli("keys", "rotate", "--publish-ahead", "0", "--db", a.db)
    match = re.search(r"new signing key (\S+) ", out)
    assert match, out
    new_kid = match.group(1)
    assert new_kid not in old_kids

    for server in (a, b):
        eventually(lambda s=server: kids(s)[0] == new_kid, f"{server.issuer} publishes {new_kid}")
        eventually(
            lambda s=server: header_kid(get_token(s, client_id, secret)) == new_kid,
            f"{server.issuer} signs with {new_kid}",
        )
        # The old keys stay published, and tokens they signed stay good, on both.
        assert old_kids <= set(kids(server))
        for token in old_tokens:
            assert introspect(server, api, token)["active"] is True
    eventually(lambda: jwks(a) == jwks(b), "A and B publish the same JWKS")
    for issuer, verifier in ((a, b), (b, a)):
        token = get_token(issuer, client_id, secret)
        assert introspect(verifier, api, token)["active"] is True


def test_disabled_with_the_cli_both_refuse(
    pair: tuple[AuthkestraServer, AuthkestraServer], api: tuple[str, str]
) -> None:
    a, b = pair
    client_id, secret = create_client(a, unique("svc"))
    tokens = [get_token(server, client_id, secret) for server in (a, b)]

    run_cli("clients", "disable", client_id, "--db", a.db)
    for server in (a, b):
        eventually(lambda s=server: refused(s, client_id, secret), f"{server.issuer} refuses")
        for token in tokens:
            eventually(
                lambda s=server, t=token: introspect(s, api, t) == {"active": False},
                f"{server.issuer}: tokens of the disabled client inactive",
            )

    run_cli("clients", "enable", client_id, "--db", a.db)
    for server in (a, b):
        eventually(lambda s=server: works(s, client_id, secret), f"{server.issuer} accepts again")


def test_rotated_secret_old_and_new_both_work_on_both(
    pair: tuple[AuthkestraServer, AuthkestraServer],
) -> None:
    a, b = pair
    client_id, old_secret = create_client(a, unique("svc"))
    for server in (a, b):  # both now hold the client, with only the old secret, in cache
        assert works(server, client_id, old_secret)

    out = run_cli("clients", "rotate-secret", client_id, "--format", "json", "--db", a.db)
    new_secret = json.loads(out)["client_secret"]
    assert new_secret != old_secret

    for server in (a, b):
        eventually(lambda s=server: works(s, client_id, new_secret), f"{server.issuer}: new secret")
        assert works(server, client_id, old_secret)  # the grace period (24 h by default)
        assert refused(server, client_id, old_secret + "x")


@pytest.mark.parametrize("shared", ["redis", "store"])
def test_an_assertion_used_on_a_is_refused_as_a_replay_on_b(
    request: pytest.FixtureRequest, postgres_server: PostgresServer, tmp_path: Path, shared: str
) -> None:
    """The jti of a used assertion is in Redis (SET NX) or, without Redis, in the store's
    used_assertions table (INSERT on its primary key): either way every instance sees it."""
    if shared == "redis":
        a, b = request.getfixturevalue("pair")
        started: tuple[AuthkestraServer, ...] = ()
    else:
        db = postgres_server.create_database(unique("replay").replace("-", "_"))
        a, b = started = start_pair(db, None, LENIENT_ENV)
    try:
        _replay_between(a, b, tmp_path)
    finally:
        stop_all(*started)


def _replay_between(a: AuthkestraServer, b: AuthkestraServer, tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256", {"kid": "k1"}, private=True)
    jwks_file = tmp_path / "client.jwks.json"
    jwks_file.write_text(json.dumps({"keys": [{**key.as_dict(private=False), "kid": "k1"}]}))
    client_id = unique("keyed")
    run_cli(
        "clients", "create", client_id, "--auth-method", "private_key_jwt",
        "--jwks", str(jwks_file), "--scope", "read", "--db", a.db,
    )  # fmt: skip

    def assertion() -> str:
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": ISSUER,  # the issuer both instances share
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        header = {"alg": "ES256", "kid": "k1", "typ": "JWT"}
        return str(jwt.encode(header, claims, key, registry=jws_registry("ES256")))

    def send(server: AuthkestraServer, signed: str) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER,
            "client_assertion": signed,
        }
        return httpx.post(server.token_url, data=form, timeout=10)

    for first, second in ((a, b), (b, a)):
        signed = assertion()
        accepted = send(first, signed)
        assert accepted.status_code == 200, accepted.text
        # The jti is in the Redis or the store both share: the other instance knows at once.
        replayed = send(second, signed)
        assert replayed.status_code == 400, replayed.text
        assert replayed.json()["error"] == "invalid_client"
        assert "already used" in replayed.json()["error_description"]
        assert send(first, signed).json()["error"] == "invalid_client"
    # A fresh assertion works on either.
    for server in (a, b):
        assert send(server, assertion()).status_code == 200


def test_revocation_outlives_a_redis_restart(
    pair: tuple[AuthkestraServer, AuthkestraServer],
    api: tuple[str, str],
    redis_server: RedisServer,
) -> None:
    a, b = pair
    client_id, secret = create_client(a, unique("svc"))
    token = get_token(a, client_id, secret)
    revoke(b, (client_id, secret), token)
    assert introspect(a, api, token) == {"active": False}
    redis_server.flush()  # what a restart of a Redis without persistence leaves
    assert introspect(a, api, token) == {"active": False}
    assert introspect(b, api, token) == {"active": False}


def test_failed_attempts_on_a_and_b_count_together(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> None:
    limit = 3
    window = 86400
    db = postgres_server.create_database(unique("limits").replace("-", "_"))
    env = {
        **COMMON_ENV,
        "AUTHKESTRA_SERVER_MAX_FAILURES_PER_ADDRESS": str(limit),
        "AUTHKESTRA_SERVER_FAILURE_WINDOW": str(window),
    }
    a, b = start_pair(db, redis_server.url, env)
    try:
        # Counts are per fixed window: should one end mid-test (once a day), run it again.
        for _attempt in range(2):
            started_in = int(time.time() // window)
            first_429 = _fail_alternately(a, b, limit)
            if int(time.time() // window) == started_in:
                break
        # After `limit` failures (or `limit` + 1: "more than" the limit) the address is
        # throttled. Counted apart, neither A nor B would have seen that many yet:
        # each instance alone would throttle at the earliest at attempt 2 * limit + 1.
        assert first_429 in (limit + 1, limit + 2)
    finally:
        stop_all(a, b)


def _fail_alternately(a: AuthkestraServer, b: AuthkestraServer, limit: int) -> int:
    """Wrong secrets on A, B, A, ... until a 429: the number of the attempt that got it."""
    client_id, secret = create_client(a, unique("svc"))
    assert works(a, client_id, secret)
    assert works(b, client_id, secret)
    for attempt in range(1, 2 * limit + 3):
        server = (a, b)[attempt % 2]
        response = request_token(server, client_id, secret + "-wrong")
        if response.status_code == 429:
            assert response.json()["error"] == "temporarily_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
            # Throttled on both, even with the right secret.
            for other in (a, b):
                assert request_token(other, client_id, secret).status_code == 429
            return attempt
        assert response.status_code == 401, response.text
    raise AssertionError(f"no 429 after {2 * limit + 2} failures split over A and B")


@pytest.mark.parametrize("round_", range(3))
def test_two_instances_starting_together_migrate_a_fresh_database_once(
    postgres_server: PostgresServer, redis_server: RedisServer, round_: int
) -> None:
    name = unique(f"fresh{round_}").replace("-", "_")
    db = postgres_server.create_database(name)
    a, b = start_pair(db, redis_server.url, LENIENT_ENV)
    try:
        for server in (a, b):
            ready = httpx.get(f"{server.issuer}/readyz", timeout=10)
            assert ready.json()["checks"] == {"store": "ok", "redis": "ok", "signing_key": "ok"}
        assert postgres_server.execute(name, "SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert postgres_server.execute(
            name, "SELECT count(*) FROM server_state WHERE name = 'client_secret_hmac_key'"
        ) == [(1,)]
        # One HMAC key for both: a client the CLI created authenticates on either.
        client_id, secret = create_client(a, unique("svc"))
        for issuer, verifier in ((a, b), (b, a)):
            token = get_token(issuer, client_id, secret)
            assert introspect(verifier, (client_id, secret), token)["active"] is True
        eventually(lambda: jwks(a) == jwks(b), "A and B publish the same JWKS")
        signing = {header_kid(get_token(server, client_id, secret)) for server in (a, b)}
        eventually(
            lambda: len({header_kid(get_token(s, client_id, secret)) for s in (a, b)}) == 1,
            f"A and B sign with one key (were: {signing})",
        )
        for server in (a, b):
            log = server.log_path.read_text(errors="replace")
            assert "Traceback" not in log, log
    finally:
        stop_all(a, b)
