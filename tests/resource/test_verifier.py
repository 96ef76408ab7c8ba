"""JWTVerifier accepting good tokens, and its cache of verified tokens."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import anyio
import pytest

from authkestra import ConfigError, InvalidToken
from authkestra.resource import AccessToken, JWTVerifier
from tests.resource.conftest import MakeVerifier
from tests.resource.support import AUDIENCE, DROP, TestIssuer
from tests.support.clock import FakeClock


@pytest.mark.parametrize("key", ["es", "ed", "rs"])
def test_accepts_each_algorithm(issuer: TestIssuer, make_verifier: MakeVerifier, key: str) -> None:
    verifier = make_verifier()
    at = int(issuer.clock.now().timestamp())
    raw = issuer.token(key, jti="jti-1", scope="read write", exp=at + 120)
    token = verifier.verify_sync(raw)
    assert token == anyio.run(verifier.verify, raw)
    assert token.subject == token.client_id == "billing-service"
    assert token.scopes == ("read", "write")
    assert token.audience == (AUDIENCE,)
    assert token.issuer == issuer.url
    assert token.jwt_id == "jti-1"
    assert token.expires_at == datetime.fromtimestamp(at + 120, timezone.utc)
    assert token.has_scopes("read") and not token.has_scopes("read", "admin")
    assert token.claims["scope"] == "read write"
    with pytest.raises(TypeError):
        token.claims["scope"] = "admin"  # type: ignore[index]


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_typ_spellings(issuer: TestIssuer, make_verifier: MakeVerifier, typ: str) -> None:
    make_verifier().verify_sync(issuer.token(header={"typ": typ}))


def test_kid_may_be_absent_when_one_key_fits(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    assert verifier.verify_sync(issuer.token("ed", header={"kid": DROP}))
    # Two EC keys published: without a kid there is no telling which one.
    issuer.published.append({**issuer.published[0], "kid": "es-2"})
    with pytest.raises(InvalidToken, match="key set"):
        make_verifier().verify_sync(issuer.token("es", header={"kid": DROP}))


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        # Spaces separate scopes (RFC 6749 §3.3); a tab is no separator, "b\tc" no scope
        # any route asks for.
        ({"scope": "a  b\tc "}, ("a", "b\tc")),
        ({"scope": DROP}, ()),
        ({"scope": DROP, "scp": ["a", "b"]}, ("a", "b")),
        ({"scope": DROP, "scp": "a b"}, ("a", "b")),
    ],
)
def test_scope_forms(
    issuer: TestIssuer, make_verifier: MakeVerifier, claims: dict[str, Any], scopes: tuple[str, ...]
) -> None:
    assert make_verifier().verify_sync(issuer.token(**claims)).scopes == scopes


def test_audience_list_and_several_accepted_audiences(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    token = issuer.token(aud=["https://other.test/", AUDIENCE])
    assert make_verifier().verify_sync(token).audience == ("https://other.test/", AUDIENCE)
    either = make_verifier(audience=["https://v2.test/", "https://other.test/"])
    assert either.verify_sync(token).client_id == "billing-service"


def test_algorithms_can_be_narrowed(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(algorithms=["EdDSA"])
    verifier.verify_sync(issuer.token("ed"))
    for key in ("es", "rs"):
        with pytest.raises(InvalidToken, match="algorithm"):
            verifier.verify_sync(issuer.token(key))


@pytest.mark.parametrize(
    "options",
    [
        {"issuer": ""},
        {"audience": ""},
        {"audience": []},
        {"jwks_url": "http://jwks.example.test/keys"},
        {"jwks_url": "ftp://127.0.0.1/keys"},
        {"jwks_url": None, "issuer": "http://auth.example.test"},
        # Settings that would fail open (a NaN or infinite leeway passes every expiry
        # check), refuse everything (a negative one), or fail on the first request.
        {"leeway": float("nan")},
        {"leeway": float("inf")},
        {"leeway": -5},
        {"leeway": "30"},
        {"leeway": True},
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": "5"},
        {"required_claims": "iss"},
        {"required_claims": ["iss", ""]},
        {"algorithms": "ES256"},
        {"audience": None},
        {"audience": 5},
        {"audience": b"https://api.example.test/"},
        {"audience": ["https://api.example.test/", None]},
        {"jwks_max_age": 0},
        {"jwks_cooldown": -1},
        {"cache_max_age": float("nan")},
        {"max_cached_tokens": -1},
        {"max_cached_tokens": 1.5},
        {"max_token_length": "16k"},
        {"max_token_length": 0},
        {"algorithms": []},
    ],
)
def test_configuration_errors(make_verifier: MakeVerifier, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        make_verifier(**options)


def test_plain_http_off_loopback_needs_allow_insecure_http(clock: FakeClock) -> None:
    verifier = JWTVerifier(
        issuer="http://auth.internal",
        audience=AUDIENCE,
        allow_insecure_http=True,
        clock=clock,
    )
    assert "auth.internal" in repr(verifier)


# -- the verified-token cache --------------------------------------------------------------


def _count_parses(verifier: JWTVerifier) -> list[str]:
    """Record every token the verifier really checks (a cache hit checks nothing)."""
    seen: list[str] = []
    parse = verifier._parse

    def counting(token: str) -> Any:
        seen.append(token)
        return parse(token)

    verifier._parse = counting  # type: ignore[method-assign]
    return seen


def test_a_verified_token_is_served_from_the_cache(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    checked = _count_parses(verifier)
    token = issuer.token()
    first = verifier.verify_sync(token)
    for _ in range(50):
        assert verifier.verify_sync(token) is first
        assert anyio.run(verifier.verify, token) is first
    assert checked == [token]
    assert issuer.jwks_requests == 1


def test_the_cache_keeps_a_token_no_longer_than_max_age(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = make_verifier(cache_max_age=60)
    checked = _count_parses(verifier)
    token = issuer.token()  # exp in 300 s
    verifier.verify_sync(token)
    clock.advance(59)
    verifier.verify_sync(token)
    assert len(checked) == 1
    clock.advance(2)
    verifier.verify_sync(token)
    assert len(checked) == 2


def test_the_cache_keeps_a_token_no_longer_than_its_exp(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    verifier = make_verifier(cache_max_age=3600, leeway=0)
    checked = _count_parses(verifier)
    token = issuer.token(exp=int(clock.now().timestamp()) + 100)
    verifier.verify_sync(token)
    clock.advance(99)
    verifier.verify_sync(token)
    assert len(checked) == 1
    clock.advance(2)
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify_sync(token)
    with pytest.raises(InvalidToken, match="expired"):
        anyio.run(verifier.verify, token)
    assert len(checked) == 3


def test_the_cache_can_be_turned_off(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(cache_tokens=False)
    assert verifier.cache is None
    checked = _count_parses(verifier)
    token = issuer.token()
    for _ in range(3):
        verifier.verify_sync(token)
        anyio.run(verifier.verify, token)
    assert len(checked) == 6
    assert issuer.jwks_requests == 1


def test_the_cache_is_bounded(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(max_cached_tokens=3)
    checked = _count_parses(verifier)
    tokens = [issuer.token() for _ in range(10)]
    for token in tokens:
        verifier.verify_sync(token)
    assert verifier.cache is not None and len(verifier.cache) == 3
    verifier.verify_sync(tokens[-1])  # the newest are kept
    verifier.verify_sync(tokens[0])  # the oldest were evicted
    assert len(checked) == 11


def test_refusals_are_not_cached(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    checked = _count_parses(verifier)
    token = issuer.token(aud="https://other.test/")
    for _ in range(3):
        with pytest.raises(InvalidToken):
            verifier.verify_sync(token)
    assert len(checked) == 3
    assert verifier.cache is not None and len(verifier.cache) == 0


def test_an_expired_token_is_never_cached(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    # Accepted within the leeway, but past exp: nothing to remember it for.
    verifier = make_verifier(leeway=30)
    at = int(clock.now().timestamp())
    verifier.verify_sync(issuer.token(exp=at - 10, iat=at - 400))
    assert verifier.cache is not None and len(verifier.cache) == 0


def test_access_token_is_immutable_and_hides_claims_from_repr(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    token = make_verifier().verify_sync(issuer.token(secret_claim="s3cr3t"))
    assert isinstance(token, AccessToken)
    assert "s3cr3t" not in repr(token)
    with pytest.raises(AttributeError):
        token.client_id = "other"  # type: ignore[misc]


# -- tokens shaped by other issuers ----------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    ["read\u00a0admin", "read\x1fadmin", "read\x0badmin", "read\u2003admin", "read\u3000admin"],
)
def test_scopes_are_separated_by_spaces_only(
    issuer: TestIssuer, make_verifier: MakeVerifier, scope: str
) -> None:
    """RFC 6749 §3.3: a space separates scopes; another blank inside one is not a second."""
    token = make_verifier().verify_sync(issuer.token(scope=scope))
    assert token.scopes == (scope,)
    assert not token.has_scopes("admin") and not token.has_scopes("read")


@pytest.mark.parametrize(
    "claims",
    [
        {"scope": ["admin"], "scp": ["read"]},  # a bad scope is not hidden by a good scp
        {"scope": 5},
        {"scope": None},
        {"scope": DROP, "scp": 5},
        {"scope": DROP, "scp": ["read", 5]},
        {"scope": DROP, "scp": ["read", ""]},
        {"scope": DROP, "scp": {"read": True}},
    ],
)
def test_malformed_scope_claims_are_refused(
    issuer: TestIssuer, make_verifier: MakeVerifier, claims: dict[str, Any]
) -> None:
    with pytest.raises(InvalidToken, match=r"scope|scp"):
        make_verifier().verify_sync(issuer.token(**claims))


@pytest.mark.parametrize("claim", ["iat", "nbf", "exp"])
@pytest.mark.parametrize("value", [None, "1700000000", True, [1]])
def test_time_claims_of_the_wrong_type_are_refused(
    issuer: TestIssuer, make_verifier: MakeVerifier, claim: str, value: Any
) -> None:
    """null included: a required iat that is null is not there."""
    with pytest.raises(InvalidToken, match=f"{claim} claim is not a number"):
        make_verifier().verify_sync(issuer.token(**{claim: value}))


def test_client_id_falls_back_to_azp(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    """Keycloak, Auth0 and Azure AD name the client in azp, not RFC 9068's client_id."""
    verifier = make_verifier(require_at_jwt_typ=False, required_claims=("iss", "exp", "aud"))
    keycloak_like = issuer.token(
        header={"typ": "JWT"}, client_id=DROP, azp="reports-job", typ="Bearer", sub="f81d-4fae"
    )
    token = verifier.verify_sync(keycloak_like)
    assert (token.client_id, token.subject) == ("reports-job", "f81d-4fae")
    both = issuer.token(client_id="billing-service", azp="someone-else")
    assert verifier.verify_sync(both).client_id == "billing-service"  # client_id wins
    neither = issuer.token(client_id=DROP)
    assert verifier.verify_sync(neither).client_id is None
    with pytest.raises(InvalidToken, match="azp claim is not a string"):
        verifier.verify_sync(issuer.token(client_id=DROP, azp=["reports-job"]))


@pytest.mark.parametrize(
    "typ",
    [
        "application/dpop+jwt",
        "application/logout+jwt",
        "APPLICATION/SECEVENT+JWT",
        "secevent+jwt ",
        " token-introspection+jwt",
        "application/jwk-set+jwt",
        None,
        ["at+jwt"],
    ],
)
def test_typ_check_off_refuses_other_types_however_spelled(
    issuer: TestIssuer, make_verifier: MakeVerifier, typ: Any
) -> None:
    verifier = make_verifier(require_at_jwt_typ=False)
    with pytest.raises(InvalidToken, match="typ"):
        verifier.verify_sync(issuer.token(header={"typ": typ}))


@pytest.mark.parametrize(
    "claims",
    [
        {"nonce": "n-0S6_WzA2Mj"},
        {"at_hash": "77QmUPtjPfzWtF2AnpK9RQ"},
        {"c_hash": "LDktKdoQak3Pk0cnXxCltA"},
        {"s_hash": "x1lpWhOEWZfQc0rL5Wfa4g"},
        {"typ": "ID"},  # Keycloak's mark on its ID tokens
    ],
)
def test_typ_check_off_refuses_id_tokens(
    issuer: TestIssuer, make_verifier: MakeVerifier, claims: dict[str, Any]
) -> None:
    """An ID token whose aud happens to be this API does not pass for an access token."""
    verifier = make_verifier(require_at_jwt_typ=False)
    assert verifier.verify_sync(issuer.token(header={"typ": "JWT"})).client_id
    with pytest.raises(InvalidToken, match="ID token"):
        verifier.verify_sync(issuer.token(header={"typ": "JWT"}, auth_time=1, **claims))
    # With the typ check on, the typ alone already refuses it.
    with pytest.raises(InvalidToken, match="typ is not at\\+jwt"):
        make_verifier().verify_sync(issuer.token(header={"typ": "JWT"}, **claims))


def test_ed25519_tokens_verify_with_keys_published_for_eddsa(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    """RFC 9864's Ed25519 is EdDSA on that curve: one key serves both names."""
    verifier = make_verifier()
    assert verifier.verify_sync(issuer.token("ed", header={"alg": "Ed25519"})).client_id
    assert verifier.verify_sync(issuer.token("ed")).client_id
    issuer.published = [{**issuer.published[1], "alg": "Ed25519"}]  # the same key, renamed
    renamed = make_verifier()
    assert renamed.verify_sync(issuer.token("ed")).client_id
    assert renamed.verify_sync(issuer.token("ed", header={"alg": "Ed25519"})).client_id


def test_errors_say_what_was_expected(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier()
    with pytest.raises(InvalidToken) as refused:
        verifier.verify_sync(issuer.token(iss=issuer.url + "/"))
    assert repr(issuer.url + "/") in refused.value.message
    assert repr(issuer.url) in refused.value.message
    with pytest.raises(InvalidToken) as refused:
        verifier.verify_sync(issuer.token(aud=["https://a.test", "https://b.test"]))
    assert "'https://a.test', 'https://b.test'" in refused.value.message
    assert repr(AUDIENCE) in refused.value.message
    with pytest.raises(InvalidToken, match="require_at_jwt_typ=False"):
        verifier.verify_sync(issuer.token(header={"typ": "JWT"}))
    with pytest.raises(InvalidToken, match="required_claims"):
        verifier.verify_sync(issuer.token(client_id=DROP))
    with pytest.raises(InvalidToken, match="ES256, ES384"):
        verifier.verify_sync(issuer.token(header={"alg": "HS256"}))
    # A long claim in the message is cut short.
    with pytest.raises(InvalidToken) as refused:
        verifier.verify_sync(issuer.token(iss="x" * 5000))
    assert len(refused.value.message) < 300


@pytest.mark.parametrize("token", [b"a.b.c", ["a.b.c"], {"token": "a.b.c"}, 5, None, 1.5])
@pytest.mark.parametrize("cache_tokens", [True, False])
def test_a_token_that_is_not_a_string_is_invalid_token(
    make_verifier: MakeVerifier, token: Any, cache_tokens: bool
) -> None:
    verifier = make_verifier(cache_tokens=cache_tokens)
    with pytest.raises(InvalidToken, match="not a string"):
        verifier.verify_sync(token)
    with pytest.raises(InvalidToken, match="not a string"):
        anyio.run(verifier.verify, token)
