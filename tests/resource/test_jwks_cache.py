"""The issuer's key set: fetched once, refreshed on a bounded schedule, never hammered.

Requests are counted at the hostile server; time is a FakeClock moved by hand, so no
assertion depends on how fast the machine is.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest

from authkestra import (
    InvalidToken,
    MalformedResponse,
    NetworkError,
    OAuthError,
    ProviderError,
)
from authkestra.resource import AccessToken, JWTVerifier
from authkestra.resource.jwks import KeySet
from tests.resource.conftest import MakeVerifier
from tests.resource.support import DROP, TestIssuer, keys, sign_compact
from tests.support.clock import FakeClock
from tests.support.hostile_server import Received, Reply


def settle(verifier: JWTVerifier) -> None:
    """Wait for the background refresh a verification may have started."""
    assert verifier.jwks.wait_idle(10)


async def verify_and_settle(verifier: JWTVerifier, token: str) -> AccessToken:
    """``verifier.verify(token)``, then wait for the refresh task it may have started."""
    access = await verifier.verify(token)
    assert await anyio.to_thread.run_sync(verifier.jwks.wait_idle, 10)
    return access


def random_kid_token(issuer: TestIssuer) -> str:
    signer = keys()["attacker-es"]
    return sign_compact(
        issuer.header(signer, kid=secrets.token_urlsafe(8)), issuer.claims(), signer
    )


# -- fetched once -----------------------------------------------------------------------


def test_keys_are_fetched_once_for_many_verifications(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    for _ in range(20):
        for key in ("es", "ed", "rs"):
            verifier.verify_sync(issuer.token(key))
            anyio.run(verifier.verify, issuer.token(key))
    assert issuer.jwks_requests == 1
    assert verifier.jwks.fetches == 1
    request = next(r for r in issuer.server.received if r.path == "/jwks")
    assert request.method == "GET"
    assert request.headers["user-agent"].startswith("authkestra/")


def test_200_coroutines_with_a_cold_cache_make_one_fetch(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    tokens = [issuer.token(("es", "ed", "rs")[i % 3]) for i in range(200)]
    results: list[Any] = []

    async def verify(token: str) -> None:
        results.append(await verifier.verify(token))

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for token in tokens:
                group.start_soon(verify, token)

    anyio.run(main)
    assert len(results) == 200
    assert issuer.jwks_requests == 1


def test_200_coroutines_with_a_cold_cache_and_the_issuer_down_make_one_fetch(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    issuer.jwks_reply = Reply(503, "")
    verifier = make_verifier()
    errors: list[BaseException] = []

    async def verify(token: str) -> None:
        try:
            await verifier.verify(token)
        except ProviderError as exc:
            errors.append(exc)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(200):
                group.start_soon(verify, issuer.token())

    anyio.run(main)
    assert len(errors) == 200
    assert all(e.status_code == 503 for e in errors)  # type: ignore[attr-defined]
    assert verifier.jwks.fetches == 1
    assert issuer.jwks_requests == 2  # the one fetch, retried once


def test_threads_with_a_cold_cache_make_one_fetch(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    tokens = [issuer.token() for _ in range(32)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(verifier.verify_sync, tokens))
    assert len(results) == 32
    assert issuer.jwks_requests == 1


# -- unknown kids, rotation, max age ---------------------------------------------------------


def test_random_kids_cause_at_most_one_refetch_per_cooldown(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = make_verifier(jwks_cooldown=30)
    verifier.verify_sync(issuer.token())
    assert issuer.jwks_requests == 1
    for _ in range(50):
        with pytest.raises(InvalidToken, match="not in the issuer's key set"):
            verifier.verify_sync(random_kid_token(issuer))
    assert issuer.jwks_requests == 1  # within the cooldown of the first fetch

    clock.advance(30)
    for _ in range(50):
        with pytest.raises(InvalidToken, match="not in the issuer's key set"):
            verifier.verify_sync(random_kid_token(issuer))
        with pytest.raises(InvalidToken, match="not in the issuer's key set"):
            anyio.run(verifier.verify, random_kid_token(issuer))
    assert issuer.jwks_requests == 2

    clock.advance(29)
    for _ in range(20):
        with pytest.raises(InvalidToken):
            verifier.verify_sync(random_kid_token(issuer))
    assert issuer.jwks_requests == 2
    clock.advance(1)
    with pytest.raises(InvalidToken):
        verifier.verify_sync(random_kid_token(issuer))
    assert issuer.jwks_requests == 3
    verifier.verify_sync(issuer.token())  # the real keys serve throughout


def test_200_coroutines_with_random_kids_make_one_refetch(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = make_verifier()
    verifier.verify_sync(issuer.token())
    clock.advance(60)
    refused: list[InvalidToken] = []

    async def verify(token: str) -> None:
        try:
            await verifier.verify(token)
        except InvalidToken as exc:
            refused.append(exc)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(200):
                group.start_soon(verify, random_kid_token(issuer))

    anyio.run(main)
    assert len(refused) == 200
    assert issuer.jwks_requests == 2


def test_a_rotated_in_key_is_picked_up_after_the_cooldown(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = make_verifier(jwks_cooldown=30)
    verifier.verify_sync(issuer.token("es"))
    issuer.published.append(keys()["attacker-rs"].public_jwk())  # the issuer's new key
    new = issuer.token("attacker-rs")
    with pytest.raises(InvalidToken, match="key set"):
        verifier.verify_sync(new)  # too soon after the last fetch to ask again
    clock.advance(30)
    new = issuer.token("attacker-rs")
    assert verifier.verify_sync(new).client_id == "billing-service"
    assert issuer.jwks_requests == 2
    # The retired key goes away at the next refresh.
    issuer.published = [keys()["attacker-rs"].public_jwk()]
    clock.advance(3600)
    verifier.verify_sync(issuer.token("attacker-rs"))  # served by the set we have...
    settle(verifier)  # ...while the refresh runs
    assert issuer.jwks_requests == 3
    with pytest.raises(InvalidToken, match="key set"):
        verifier.verify_sync(issuer.token("es"))


def test_keys_are_refetched_after_jwks_max_age(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = make_verifier(jwks_max_age=600, cache_tokens=False)
    verifier.verify_sync(issuer.token())
    clock.advance(599)
    verifier.verify_sync(issuer.token())
    anyio.run(verifier.verify, issuer.token())
    assert issuer.jwks_requests == 1
    clock.advance(1)
    verifier.verify_sync(issuer.token())
    settle(verifier)
    assert issuer.jwks_requests == 2
    for _ in range(10):
        verifier.verify_sync(issuer.token())
    clock.advance(600)
    anyio.run(verify_and_settle, verifier, issuer.token())
    assert issuer.jwks_requests == 3


@pytest.mark.parametrize(
    ("cache_control", "max_age", "refetch_after"),
    [
        ("public, max-age=60", 3600, 60),  # shorter than ours: honoured
        ("max-age=86400", 600, 600),  # longer than ours: ours wins
        ("no-cache, max-age=0", 3600, 30),  # too short: never under the cooldown
        ("s-maxage=5", 600, 600),  # not max-age
        ("MAX-AGE=120", 3600, 120),
    ],
)
def test_cache_control_max_age(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    cache_control: str,
    max_age: int,
    refetch_after: int,
) -> None:
    issuer.jwks_headers = {"Cache-Control": cache_control}
    verifier = make_verifier(jwks_max_age=max_age, jwks_cooldown=30, cache_tokens=False)
    verifier.verify_sync(issuer.token())
    clock.advance(refetch_after - 1)
    verifier.verify_sync(issuer.token())
    assert issuer.jwks_requests == 1
    clock.advance(1)
    verifier.verify_sync(issuer.token())
    settle(verifier)
    assert issuer.jwks_requests == 2


# -- the issuer down -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "down", [Reply(503, "unavailable"), Reply(behaviour="close"), Reply(500, '{"error": "x"}')]
)
def test_stale_keys_keep_serving_while_the_issuer_is_down(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock, down: Reply
) -> None:
    verifier = make_verifier(jwks_max_age=600, jwks_cooldown=30, cache_tokens=False)
    verifier.verify_sync(issuer.token("es"))
    issuer.jwks_reply = down
    clock.advance(600)
    # Stale: a refresh is due, it fails, and the keys we have still verify.
    verifier.verify_sync(issuer.token("es"))
    settle(verifier)
    assert verifier.jwks.fetches == 2
    for _ in range(10):
        verifier.verify_sync(issuer.token("rs"))
        anyio.run(verifier.verify, issuer.token("ed"))
    assert verifier.jwks.fetches == 2  # no new attempt within the cooldown
    # An unknown kid during the outage is still the token's fault, not a 503.
    clock.advance(30)
    with pytest.raises(InvalidToken, match="key set"):
        verifier.verify_sync(random_kid_token(issuer))
    assert verifier.jwks.fetches == 3
    clock.advance(30)
    anyio.run(verify_and_settle, verifier, issuer.token("es"))
    assert verifier.jwks.fetches == 4
    # The issuer comes back: the next attempt refreshes, then the schedule is normal again.
    issuer.jwks_reply = None
    clock.advance(30)
    verifier.verify_sync(issuer.token("es"))
    settle(verifier)
    assert verifier.jwks.fetches == 5
    clock.advance(599)
    verifier.verify_sync(issuer.token("es"))
    assert verifier.jwks.fetches == 5


@pytest.mark.parametrize(
    ("down", "error"),
    [
        (Reply(503, "unavailable"), ProviderError),
        (Reply(404, "not here"), ProviderError),
        (Reply(302, headers={"Location": "http://evil.example.test/jwks"}), ProviderError),
        (Reply(200, '{"error": "server_error"}'), OAuthError),
        (Reply(behaviour="close"), NetworkError),
        (Reply(200, "<html>keys</html>", content_type="text/html"), MalformedResponse),
        (Reply(200, '{"keys": {"kty": "EC"}}'), MalformedResponse),
        (Reply(200, '{"no": "keys"}'), MalformedResponse),
        (Reply(200, "[]"), MalformedResponse),
        (Reply(200, b'{"keys": [], "x": "\xff"}'), MalformedResponse),
        (Reply(200, '{"keys": [], "keys": []}'), MalformedResponse),
    ],
)
def test_no_keys_and_the_issuer_failing_is_not_invalid_token(
    issuer: TestIssuer,
    make_verifier: MakeVerifier,
    clock: FakeClock,
    down: Reply,
    error: type[Exception],
) -> None:
    issuer.jwks_reply = down
    verifier = make_verifier(jwks_cooldown=30)
    with pytest.raises(error) as first:
        verifier.verify_sync(issuer.token())
    assert not isinstance(first.value, InvalidToken)
    requests = issuer.jwks_requests
    assert requests in (1, 2)  # 5xx and network failures are retried once
    # Fast repeated failures: the error is remembered, the issuer is not asked again.
    for _ in range(20):
        with pytest.raises(error):
            verifier.verify_sync(issuer.token())
        with pytest.raises(error):
            anyio.run(verifier.verify, issuer.token())
    assert issuer.jwks_requests == requests
    assert verifier.jwks.fetches == 1
    clock.advance(30)
    with pytest.raises(error):
        verifier.verify_sync(issuer.token())
    assert verifier.jwks.fetches == 2
    # And once it answers, tokens verify.
    issuer.jwks_reply = None
    clock.advance(30)
    assert verifier.verify_sync(issuer.token()).client_id == "billing-service"


def test_unreachable_issuer_is_network_error(clock: FakeClock) -> None:
    from tests.support.redis_server import free_port

    port = free_port()
    verifier = JWTVerifier(
        issuer=f"http://127.0.0.1:{port}",
        audience="https://api.example.test/",
        clock=clock,
        timeout=2,
    )
    with pytest.raises(NetworkError, match="could not connect"):
        verifier.verify_sync(_any_token())
    with pytest.raises(NetworkError):
        anyio.run(verifier.verify, _any_token())


def _any_token() -> str:
    signer = keys()["es"]
    return sign_compact({"alg": "ES256", "typ": "at+jwt", "kid": "es-1"}, {"a": 1}, signer)


def test_an_oversized_key_set_is_malformed(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    filler = [{"kty": "oct", "k": "A" * 1000, "kid": str(i)} for i in range(300)]
    issuer.jwks_reply = Reply(200, json.dumps({"keys": [*issuer.published, *filler]}))
    verifier = make_verifier()
    with pytest.raises(MalformedResponse, match="more than 262144 bytes"):
        verifier.verify_sync(issuer.token())
    with pytest.raises(MalformedResponse, match="more than 262144 bytes"):
        anyio.run(make_verifier().verify, issuer.token())


def test_an_endless_key_set_is_cut_off(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    issuer.jwks_reply = Reply(200, '{"keys": [', behaviour="endless")
    with pytest.raises(MalformedResponse, match="more than"):
        make_verifier().verify_sync(issuer.token())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_hanging_issuer_times_out(
    issuer: TestIssuer, make_verifier: MakeVerifier, mode: str
) -> None:
    issuer.jwks_reply = Reply(behaviour="hang")
    verifier = make_verifier(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(NetworkError, match="timed out"):
        if mode == "sync":
            verifier.verify_sync(issuer.token())
        else:
            anyio.run(verifier.verify, issuer.token())
    # Two attempts of 0.5 s and a back-off of at most 0.2 s; generous bound for slow CI.
    assert time.monotonic() - started < 8
    assert issuer.jwks_requests == 2


# -- discovery -------------------------------------------------------------------------------


def test_jwks_uri_is_discovered_from_the_issuer_metadata(
    issuer: TestIssuer, clock: FakeClock
) -> None:
    issuer.metadata = True
    verifier = JWTVerifier(issuer=issuer.url, audience="https://api.example.test/", clock=clock)
    assert verifier.jwks.jwks_url is None
    for _ in range(5):
        verifier.verify_sync(issuer.token())
        anyio.run(verifier.verify, issuer.token())
    assert verifier.jwks.jwks_url == issuer.jwks_url
    assert issuer.requests_to("/.well-known/oauth-authorization-server") == 1
    assert issuer.jwks_requests == 1
    clock.advance(3600)
    verifier.verify_sync(issuer.token())
    settle(verifier)
    assert issuer.requests_to("/.well-known/oauth-authorization-server") == 1
    assert issuer.jwks_requests == 2


@pytest.mark.parametrize(
    ("metadata", "error", "message"),
    [
        ({"issuer": "http://elsewhere.test", "jwks_uri": "x"}, MalformedResponse, "not the conf"),
        ({"issuer": None}, MalformedResponse, "not the configured"),
        ({}, MalformedResponse, "has no jwks_uri"),
        ({"jwks_uri": "http://keys.example.test/jwks"}, MalformedResponse, "plain http"),
        (None, ProviderError, "no authorization server metadata.*give jwks_url instead"),
    ],
)
def test_bad_metadata(
    issuer: TestIssuer,
    clock: FakeClock,
    metadata: dict[str, Any] | None,
    error: type[Exception],
    message: str,
) -> None:
    def answer(request: Received) -> Reply:
        if request.path == "/.well-known/oauth-authorization-server" and metadata is not None:
            document = {"issuer": issuer.url, **metadata}
            return Reply(200, json.dumps(document))
        return Reply(404, "{}")

    issuer.server.script = answer
    verifier = JWTVerifier(issuer=issuer.url, audience="https://api.example.test/", clock=clock)
    with pytest.raises(error, match=message):
        verifier.verify_sync(issuer.token())


# -- the key set itself ----------------------------------------------------------------------


def test_unusable_keys_are_skipped_not_fatal(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    es = keys()["es"].public_jwk()
    issuer.published = [
        "not a key",
        17,
        None,
        [],
        {"kty": ["EC"], "kid": "list-kty"},
        {"kty": {"EC": 1}, "kid": "dict-kty"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "bad-point"},
        {**keys()["ed"].public_jwk(), "use": "enc"},
        keys()["weak-rs"].public_jwk(),
        {**keys()["rs"].public_jwk(), "n": 12},
        es,
    ]
    verifier = make_verifier()
    assert verifier.verify_sync(issuer.token("es"))
    for name in ("ed", "rs", "weak-rs"):
        with pytest.raises(InvalidToken, match="key set"):
            verifier.verify_sync(issuer.token(name))
    assert verifier.jwks.keys is not None
    assert verifier.jwks.keys.kids() == ["es-1"]


def test_hs256_cannot_use_an_oct_key_even_if_published(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    import hashlib
    import hmac

    from tests.resource.support import b64url, segment

    issuer.published.append({"kty": "oct", "k": b64url(b"secret"), "kid": "hmac", "alg": "HS256"})
    signing_input = (
        f"{segment({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'hmac'})}.{segment(issuer.claims())}"
    )
    mac = hmac.new(b"secret", signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken, match="algorithm 'HS256'"):
        make_verifier().verify_sync(f"{signing_input}.{b64url(mac)}")


def test_private_key_material_in_the_jwks_is_dropped() -> None:
    private = keys()["es"].key.as_dict(private=True)
    assert "d" in private
    key_set = KeySet({"keys": [{**private, "kid": "es-1"}]})
    assert not key_set.entries[0].key.is_private
    assert key_set.find("es-1", "ES256") is not None
    assert key_set.find("es-1", "RS256") is None


def test_a_key_published_with_another_alg_is_not_used_for_this_one() -> None:
    jwk = {**keys()["rs"].public_jwk(), "alg": "PS256"}
    key_set = KeySet({"keys": [jwk]})
    assert key_set.find("rs-1", "PS256") is not None
    assert key_set.find("rs-1", "RS256") is None
    assert key_set.find(None, "RS256") is None


def test_one_kid_for_keys_of_several_types() -> None:
    """RFC 7517 §4.5 lets keys of different types share a kid: the token's alg picks one."""
    es, rs = keys()["es"].public_jwk(), {**keys()["rs"].public_jwk(), "kid": "es-1"}
    key_set = KeySet({"keys": [es, rs]})
    assert key_set.find("es-1", "ES256") is not None
    assert key_set.find("es-1", "RS256") is not None
    assert key_set.find("es-1", "ES256") is not key_set.find("es-1", "RS256")
    assert key_set.find("es-1", "PS256") is None  # rs is published for RS256 only
    assert "not as a key for PS256" in key_set.missing("es-1", "PS256").message


def test_a_kid_shared_by_two_key_types_verifies_both(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    issuer.published = [keys()["es"].public_jwk(), {**keys()["rs"].public_jwk(), "kid": "es-1"}]
    verifier = make_verifier()
    assert verifier.verify_sync(issuer.token("es")).client_id == "billing-service"
    assert verifier.verify_sync(issuer.token("rs", header={"kid": "es-1"})).client_id
    assert issuer.jwks_requests == 1


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"kid": "es-1", "alg": "ES384"}, "in the issuer's key set, but not as a key for ES384"),
        ({"kid": "es-1", "alg": "RS256"}, "in the issuer's key set, but not as a key for RS256"),
        ({"kid": "rs-1", "alg": "PS256"}, "in the issuer's key set, but not as a key for PS256"),
        ({"kid": "nobody"}, "not in the issuer's key set"),
    ],
)
def test_a_key_that_does_not_fit_says_so(
    issuer: TestIssuer, make_verifier: MakeVerifier, header: dict[str, Any], reason: str
) -> None:
    verifier = make_verifier()
    verifier.verify_sync(issuer.token("es"))
    signer = "rs" if header.get("alg") in ("RS256", "PS256") else "es"
    with pytest.raises(InvalidToken, match=reason):
        verifier.verify_sync(issuer.token(signer, header=header))


def test_no_kid_and_several_fitting_keys_says_so(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    issuer.published.append({**keys()["es"].public_jwk(), "kid": "es-2"})
    with pytest.raises(InvalidToken, match="no kid and the issuer's key set has several keys"):
        make_verifier().verify_sync(issuer.token("es", header={"kid": DROP}))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_due_refresh_never_holds_a_request(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock, mode: str
) -> None:
    """Past jwks_max_age, with the issuer hanging: the keys we have answer at once, while
    the refresh waits on the issuer in the background."""
    verifier = make_verifier(jwks_max_age=60, jwks_cooldown=1, timeout=20, cache_tokens=False)
    verifier.verify_sync(issuer.token("es"))
    issuer.jwks_reply = Reply(behaviour="hang")
    clock.advance(60)

    def verify_all_sync() -> list[AccessToken]:
        verified = [verifier.verify_sync(issuer.token(key)) for key in ("es", "ed", "rs")]
        # Answered, and the refresh they started is still in flight: the hanging issuer
        # holds it until the fetch gives up (10 s in all).
        assert not verifier.jwks.wait_idle(0)
        return verified

    async def verify_all() -> list[AccessToken]:
        verified = [await verifier.verify(issuer.token(key)) for key in ("es", "ed", "rs")]
        assert not verifier.jwks.wait_idle(0)
        return verified

    verified = verify_all_sync() if mode == "sync" else anyio.run(verify_all)
    assert [t.client_id for t in verified] == ["billing-service"] * 3


def test_a_key_rotated_in_just_after_a_scheduled_refresh_is_fetched_at_once(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """A scheduled refresh does not start the unknown-kid cooldown: the issuer's new key,
    used a moment after it, is fetched for its first token instead of refused for 30 s."""
    verifier = make_verifier(jwks_max_age=60, jwks_cooldown=30, cache_tokens=False)
    verifier.verify_sync(issuer.token("es"))
    clock.advance(60)
    verifier.verify_sync(issuer.token("es"))
    settle(verifier)  # the scheduled refresh
    assert issuer.jwks_requests == 2
    issuer.published.append(keys()["attacker-rs"].public_jwk())  # the issuer rotates
    clock.advance(1)
    assert verifier.verify_sync(issuer.token("attacker-rs")).client_id == "billing-service"
    assert issuer.jwks_requests == 3
    # That fetch was waited for: unknown kids are now refused for a cooldown after it.
    with pytest.raises(InvalidToken, match="not in the issuer's key set"):
        verifier.verify_sync(random_kid_token(issuer))
    assert issuer.jwks_requests == 3


def test_an_ed448_key_published_as_ed25519_does_not_verify_eddsa() -> None:
    from joserfc.jwk import OKPKey

    ed448 = {**OKPKey.generate_key("Ed448").as_dict(private=False), "kid": "x", "alg": "Ed25519"}
    ed25519 = {**keys()["ed"].public_jwk(), "alg": "Ed25519"}
    key_set = KeySet({"keys": [ed448, ed25519]})
    assert key_set.find("x", "EdDSA") is None  # Ed25519 is EdDSA on Ed25519 only
    assert key_set.find("ed-1", "EdDSA") is not None


def test_a_fetch_whose_leader_never_ends_is_given_up_for_lost(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    """A leader on an event loop that stopped (never closed) would hold every later fetch:
    past the longest a fetch can take, its flight is abandoned and fetched again."""
    verifier = make_verifier(cache_tokens=False)
    verifier.verify_sync(issuer.token("es"))
    store = verifier.jwks.store
    slot = store.slot("jwks")
    flight, leader, _ = store._join(slot, slot.generation, force=True)  # a leader that never runs
    assert flight is not None and leader
    clock.advance(verifier.jwks.ctx.policy.total_timeout + 6)
    issuer.published.append(keys()["attacker-rs"].public_jwk())  # a new key to fetch for
    assert verifier.verify_sync(issuer.token("attacker-rs")).client_id == "billing-service"
    assert flight.abandoned
    assert issuer.jwks_requests == 2


def test_only_the_first_100_keys_are_read() -> None:
    jwk = keys()["es"].public_jwk()
    key_set = KeySet({"keys": [{**jwk, "kid": str(i)} for i in range(150)]})
    assert len(key_set.entries) == 100


# -- cancellation ----------------------------------------------------------------------------


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):  # 10 s at most
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError("gave up waiting")


def test_a_cancelled_fetch_does_not_fail_the_callers_waiting_for_it(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    """The first caller leads the fetch and is cancelled; the one waiting on it gets the key."""
    release = threading.Event()
    served = json.dumps({"keys": issuer.published})

    def answer(request: Received) -> Reply:
        if issuer.jwks_requests == 1:
            release.wait(10)  # the leader's request: held until it has been cancelled
        return Reply(200, served)

    issuer.jwks_reply = answer
    verifier = make_verifier()
    outcome: list[Any] = []

    async def main() -> None:
        async with anyio.create_task_group() as group:
            leader = anyio.CancelScope()

            async def lead() -> None:
                with leader:
                    await verifier.verify(issuer.token())

            async def follow() -> None:
                try:
                    outcome.append(await verifier.verify(issuer.token()))
                except Exception as exc:
                    outcome.append(exc)

            group.start_soon(lead)
            await until(lambda: issuer.jwks_requests == 1)  # the leader's request is held
            group.start_soon(follow)
            flight = verifier.jwks.store.slot("jwks").flight
            assert flight is not None
            await until(lambda: bool(flight._wakers))  # the follower waits on that fetch
            leader.cancel()

    try:
        anyio.run(main)
    finally:
        release.set()
    assert len(outcome) == 1
    assert not isinstance(outcome[0], Exception), outcome[0]
    assert outcome[0].client_id == "billing-service"
