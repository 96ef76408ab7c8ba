"""The corpus of forged and malformed tokens: each one is InvalidToken, never anything else.

The issuer publishes an ES256, an EdDSA and an RS256 key (and, in one case, a weak RSA
key); tokens are signed here by hand so they can carry what real libraries never send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authkestra import ConfigError, InvalidToken
from authkestra.resource import AccessToken, JWTVerifier
from authkestra.resource.verifier import RFC9068_CLAIMS
from tests.resource.conftest import MakeVerifier
from tests.resource.support import (
    AUDIENCE,
    DROP,
    TestIssuer,
    b64url,
    keys,
    segment,
    sign_compact,
)
from tests.support.clock import FakeClock
from tests.support.hostile_server import HostileServer

Build = Callable[[TestIssuer], str]


def _hs256_with_public_key(issuer: TestIssuer, secret: bytes) -> str:
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "rs-1"}
    signing_input = f"{segment(header)}.{segment(issuer.claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def hs256_public_pem(issuer: TestIssuer) -> str:
    public = keys()["rs"].key.public_key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _hs256_with_public_key(issuer, pem)


def hs256_public_jwk(issuer: TestIssuer) -> str:
    return _hs256_with_public_key(issuer, json.dumps(keys()["rs"].public_jwk()).encode())


def alg_none(issuer: TestIssuer, alg: str = "none", with_signature: bool = False) -> str:
    header = {"alg": alg, "typ": "at+jwt", "kid": "es-1"}
    token = sign_compact(header, issuer.claims(), None)
    return token + (b64url(b"\x00" * 64) if with_signature else "")


def attacker(issuer: TestIssuer, name: str = "attacker-es", **header: Any) -> str:
    """Signed by a key the issuer never published."""
    return issuer.token(name, header=header)


def embedded_jwk(issuer: TestIssuer, kid: Any = DROP) -> str:
    evil = keys()["attacker-es"]
    return issuer.token("attacker-es", header={"jwk": evil.public_jwk(), "kid": kid})


def jku(issuer: TestIssuer) -> str:
    return attacker(issuer, jku=f"{issuer.url}/evil-jwks")


def x5u(issuer: TestIssuer) -> str:
    return attacker(issuer, x5u=f"{issuer.url}/evil-cert.pem")


def swapped_signature(issuer: TestIssuer) -> str:
    mine = issuer.token("es", scope="read")
    other = issuer.token("es", scope="read write admin")
    return mine.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]


def flipped_bit(issuer: TestIssuer) -> str:
    head, sig = issuer.token("es").rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[10] ^= 0x01
    return f"{head}.{b64url(bytes(raw))}"


def der_signature(issuer: TestIssuer) -> str:
    """ES256 signed correctly, but the signature DER-encoded (JWS wants raw r||s)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signer = keys()["es"]
    signing_input = f"{segment(issuer.header(signer))}.{segment(issuer.claims())}"
    private = signer.key.private_key
    der = private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    return f"{signing_input}.{b64url(der)}"


def raw_parts(header: bytes | str, payload: bytes | str | None = None) -> Build:
    """A token from raw JSON text, validly signed by the issuer's ES256 key."""

    def build(issuer: TestIssuer) -> str:
        body = payload if payload is not None else json.dumps(issuer.claims())
        return sign_compact(
            header.encode() if isinstance(header, str) else header,
            body.encode() if isinstance(body, str) else body,
            keys()["es"],
        )

    return build


def payload_text(issuer: TestIssuer, replace: tuple[str, str]) -> str:
    text = json.dumps(issuer.claims(exp=1234567890123))
    return text.replace(*replace)


def raw_payload(replace: tuple[str, str]) -> Build:
    def build(issuer: TestIssuer) -> str:
        header = json.dumps(issuer.header(keys()["es"]))
        return raw_parts(header, payload_text(issuer, replace))(issuer)

    return build


GOOD_HEADER = '{"alg": "ES256", "typ": "at+jwt", "kid": "es-1"}'


def mangled(change: Callable[[str], str]) -> Build:
    return lambda issuer: change(issuer.token("es"))


def with_segment(index: int, change: Callable[[str], str]) -> Build:
    def build(issuer: TestIssuer) -> str:
        parts = issuer.token("es").split(".")
        parts[index] = change(parts[index])
        return ".".join(parts)

    return build


def without(claim: str) -> Build:
    return lambda issuer: issuer.token(**{claim: DROP})


def now(issuer: TestIssuer) -> int:
    return int(issuer.clock.now().timestamp())


#: (id, how to build it, what the InvalidToken says)
CORPUS: list[tuple[str, Build, str]] = [
    # -- the algorithm --
    ("alg-none", alg_none, "algorithm 'none'"),
    ("alg-none-with-signature", lambda i: alg_none(i, with_signature=True), "algorithm 'none'"),
    ("alg-None-capitalised", lambda i: alg_none(i, "None"), "algorithm"),
    ("alg-NONE", lambda i: alg_none(i, "NONE"), "algorithm"),
    ("hs256-with-public-key-pem", hs256_public_pem, "algorithm 'HS256'"),
    ("hs256-with-public-jwk", hs256_public_jwk, "algorithm 'HS256'"),
    ("alg-missing", lambda i: i.token(header={"alg": DROP}), "algorithm"),
    ("alg-not-a-string", lambda i: i.token(header={"alg": ["ES256"]}), "algorithm"),
    ("alg-lowercase", lambda i: i.token(header={"alg": "es256"}), "algorithm"),
    ("alg-not-configured", lambda i: i.token(header={"alg": "ES512"}), "algorithm 'ES512'"),
    # -- the key --
    ("unknown-kid", attacker, "not in the issuer's key set"),
    ("unknown-kid-rsa", lambda i: attacker(i, "attacker-rs"), "not in the issuer's key set"),
    ("real-kid-attacker-key", lambda i: attacker(i, kid="es-1"), "signature is not valid"),
    ("embedded-jwk", embedded_jwk, "signature is not valid"),
    ("embedded-jwk-with-its-kid", lambda i: embedded_jwk(i, "attacker-es"), "key set"),
    ("embedded-jwk-real-kid", lambda i: embedded_jwk(i, "es-1"), "signature is not valid"),
    ("jku-header", jku, "not in the issuer's key set"),
    ("x5u-header", x5u, "not in the issuer's key set"),
    ("kid-not-a-string", lambda i: i.token(header={"kid": 1}), "kid is not a string"),
    ("es256-with-rsa-kid", lambda i: i.token("es", header={"kid": "rs-1"}), "key set"),
    ("rs256-with-ec-kid", lambda i: i.token("rs", header={"kid": "es-1"}), "key set"),
    ("eddsa-with-ec-kid", lambda i: i.token("ed", header={"kid": "es-1"}), "key set"),
    ("ps256-with-rs256-key", lambda i: i.token("rs", header={"alg": "PS256"}), "key set"),
    ("weak-rsa-1024", lambda i: i.token("weak-rs"), "not in the issuer's key set"),
    # -- the signature --
    ("signature-of-another-token", swapped_signature, "signature is not valid"),
    ("signature-bit-flipped", flipped_bit, "signature is not valid"),
    ("signature-der-encoded", der_signature, "signature is not valid"),
    ("signature-empty", mangled(lambda t: t.rsplit(".", 1)[0] + "."), "signature is not valid"),
    # -- typ --
    ("typ-JWT", lambda i: i.token(header={"typ": "JWT"}), "typ is not at\\+jwt"),
    ("typ-missing", lambda i: i.token(header={"typ": DROP}), "typ is not at\\+jwt"),
    ("typ-dpop", lambda i: i.token(header={"typ": "dpop+jwt"}), "typ is not at\\+jwt"),
    ("typ-not-a-string", lambda i: i.token(header={"typ": ["at+jwt"]}), "typ is not at\\+jwt"),
    # -- claims --
    ("iss-wrong", lambda i: i.token(iss="https://evil.example.test"), "another issuer"),
    ("iss-trailing-slash", lambda i: i.token(iss=i.url + "/"), "another issuer"),
    ("aud-wrong", lambda i: i.token(aud="https://other.example.test/"), "another audience"),
    ("aud-empty-list", lambda i: i.token(aud=[]), "another audience"),
    ("aud-not-strings", lambda i: i.token(aud=[1, 2]), "aud claim is missing or malformed"),
    ("aud-object", lambda i: i.token(aud={"x": 1}), "aud claim is missing or malformed"),
    ("expired", lambda i: i.token(exp=now(i) - 31, iat=now(i) - 400), "expired"),
    ("exp-a-string", lambda i: i.token(exp=str(now(i) + 300)), "exp claim is not a number"),
    ("exp-a-boolean", lambda i: i.token(exp=True), "exp claim is not a number"),
    ("exp-null", lambda i: i.token(exp=None), "exp claim is not a number"),
    ("nbf-future", lambda i: i.token(nbf=now(i) + 31), "not valid yet"),
    ("nbf-a-string", lambda i: i.token(nbf="0"), "nbf claim is not a number"),
    ("iat-future", lambda i: i.token(iat=now(i) + 31), "issued in the future"),
    ("iat-a-list", lambda i: i.token(iat=[1]), "iat claim is not a number"),
    ("sub-not-a-string", lambda i: i.token(sub=12), "sub claim is not a string"),
    ("client-id-not-a-string", lambda i: i.token(client_id=None), "client_id claim"),
    ("jti-not-a-string", lambda i: i.token(jti={"a": 1}), "jti claim is not a string"),
    ("scope-not-a-string", lambda i: i.token(scope=["read"]), "scope claim is not a string"),
    *[(f"missing-{name}", without(name), f"no {name} claim") for name in RFC9068_CLAIMS],
    # -- the compact form --
    ("empty", lambda i: "", "the token is empty"),
    ("one-part", mangled(lambda t: t.split(".")[0]), "three dot-separated parts"),
    ("two-parts", mangled(lambda t: t.rsplit(".", 1)[0]), "three dot-separated parts"),
    ("four-parts", mangled(lambda t: t + ".AAAA"), "three dot-separated parts"),
    ("only-dots", lambda i: "..", "header is not base64url"),
    ("truncated-signature", mangled(lambda t: t[:-10]), "signature"),
    ("truncated-one-char", mangled(lambda t: t[:-1]), "signature"),
    ("truncated-in-payload", mangled(lambda t: t[: t.index(".") + 12]), "three"),
    ("truncated-header", mangled(lambda t: t[:9] + t[t.index(".") :]), "header"),
    ("oversized-100kb", lambda i: i.token(padding="x" * 100_000), "longer than 16384"),
    ("padded-header", with_segment(0, lambda s: s + "=="), "header is not base64url"),
    ("padded-signature", with_segment(2, lambda s: s + "="), "signature is not base64url"),
    ("plus-and-slash", with_segment(1, lambda s: "+/" + s[2:]), "payload is not base64url"),
    ("standard-base64", with_segment(0, lambda s: s.replace("_", "/") + "/+"), "not base64url"),
    ("base64-length-1-mod-4", with_segment(1, lambda s: s + "A" * (5 - len(s) % 4)), "base64"),
    ("whitespace-inside", with_segment(1, lambda s: s[:5] + " " + s[5:]), "not base64url"),
    ("newline-at-end", mangled(lambda t: t + "\n"), "signature is not base64url"),
    ("non-ascii-letters", with_segment(0, lambda s: "é" + s), "header is not base64url"),
    (
        "fullwidth-digits",
        with_segment(2, lambda s: s + "\uff11\uff12"),
        "signature is not base64url",
    ),
    # -- the JSON --
    ("header-json-array", raw_parts('["alg", "ES256"]'), "header is not a JSON object"),
    ("header-json-string", raw_parts('"ES256"'), "header is not a JSON object"),
    ("header-json-null", raw_parts("null"), "header is not a JSON object"),
    ("header-not-json", raw_parts("{alg: ES256}"), "header is not a JSON object"),
    ("header-empty", raw_parts(""), "header is not base64url"),
    ("payload-json-array", raw_parts(GOOD_HEADER, "[1, 2, 3]"), "payload is not a JSON object"),
    ("payload-not-json", raw_parts(GOOD_HEADER, "exp=1"), "payload is not a JSON object"),
    ("nested-header", raw_parts("[" * 11_000), "header is not a JSON object"),
    ("nested-payload", raw_parts(GOOD_HEADER, '{"a":' * 2_000), "payload is not a JSON object"),
    (
        "duplicate-alg",
        raw_parts('{"alg": "ES256", "alg": "none", "typ": "at+jwt", "kid": "es-1"}'),
        "duplicate member 'alg'",
    ),
    (
        "duplicate-aud",
        raw_payload(('"aud": ', '"aud": "https://evil.example.test/", "aud": ')),
        "duplicate member 'aud'",
    ),
    ("exp-NaN", raw_payload(("1234567890123", "NaN")), "NaN is not valid JSON"),
    ("exp-Infinity", raw_payload(("1234567890123", "Infinity")), "Infinity is not valid JSON"),
    ("exp-1e400", raw_payload(("1234567890123", "1e400")), "exp claim is not a number"),
    ("exp-5000-digits", raw_payload(("1234567890123", "9" * 5000)), "payload is not a JSON"),
    ("header-not-utf8", raw_parts(b'{"alg": "ES256", "x": "\xff\xfe"}'), "header is not a JSON"),
    ("payload-not-utf8", raw_parts(GOOD_HEADER, b'{"sub": "\xc3\x28"}'), "payload is not a JSON"),
    ("payload-utf16", raw_parts(GOOD_HEADER, '{"a": 1}'.encode("utf-16")), "payload is not"),
    ("crit-header", lambda i: i.token(header={"crit": ["exp"], "exp": 1}), "critical header"),
    ("crit-empty", lambda i: i.token(header={"crit": []}), "critical header"),
    ("b64-false", lambda i: i.token(header={"b64": False}), "critical header"),
]


@pytest.fixture(scope="module")
def corpus_issuer() -> Iterator[TestIssuer]:
    """One issuer and one verifier for the whole corpus: its keys are fetched once."""
    server = HostileServer()
    yield TestIssuer(server, FakeClock())
    server.stop()


@pytest.fixture(scope="module")
def corpus_verifier(corpus_issuer: TestIssuer) -> JWTVerifier:
    return JWTVerifier(
        issuer=corpus_issuer.url,
        audience=AUDIENCE,
        jwks_url=corpus_issuer.jwks_url,
        clock=corpus_issuer.clock,
    )


@pytest.mark.parametrize(
    ("build", "reason"), [pytest.param(b, r, id=name) for name, b, r in CORPUS]
)
def test_forgery_is_invalid_token(
    corpus_issuer: TestIssuer, corpus_verifier: JWTVerifier, build: Build, reason: str
) -> None:
    issuer, verifier = corpus_issuer, corpus_verifier
    # The well-formed twin is accepted: the refusal is the forgery's doing.
    assert verifier.verify_sync(issuer.token("es")).client_id == "billing-service"
    assert verifier.cache is not None
    remembered = len(verifier.cache)
    token = build(issuer)
    with pytest.raises(InvalidToken, match=reason):
        verifier.verify_sync(token)
    with pytest.raises(InvalidToken, match=reason):
        anyio.run(verifier.verify, token)
    assert len(verifier.cache) == remembered  # refusals are never remembered
    # Nothing the token pointed at was fetched (no jku, no x5u), and no key set refetch:
    # the fake clock stands still, so the cooldown never ends.
    assert {r.path for r in issuer.server.received} == {"/jwks"}
    assert issuer.jwks_requests == 1


def test_refusing_every_forgery_in_turn_fetches_the_keys_once(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    for _name, build, _reason in CORPUS:
        with pytest.raises(InvalidToken):
            verifier.verify_sync(build(issuer))
    assert issuer.jwks_requests == 1


def test_the_100000_bracket_nesting_is_refused_without_recursion_trouble(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(max_token_length=1_000_000)
    for nested in ("[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000):
        token = raw_parts(GOOD_HEADER, nested)(issuer)
        with pytest.raises(InvalidToken, match="payload is not a JSON object"):
            verifier.verify_sync(token)
        token = raw_parts(nested)(issuer)
        with pytest.raises(InvalidToken, match="header is not a JSON object"):
            verifier.verify_sync(token)
    assert issuer.jwks_requests == 0


@pytest.mark.parametrize("token", [None, b"a.b.c", 42, "   ", "Bearer x.y.z"])
def test_not_a_token_at_all(make_verifier: MakeVerifier, token: Any) -> None:
    with pytest.raises(InvalidToken):
        make_verifier().verify_sync(token)


def test_exp_far_in_the_future_is_invalid_token_not_overflow(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    for exp in (10**20, 1e300, 253_402_300_800, 2**63):
        with pytest.raises(InvalidToken, match="exp"):
            verifier.verify_sync(issuer.token(exp=exp))


def test_claims_within_leeway_are_accepted(
    issuer: TestIssuer, make_verifier: MakeVerifier, clock: FakeClock
) -> None:
    at = int(clock.now().timestamp())
    verifier = make_verifier(leeway=30)
    verifier.verify_sync(issuer.token(exp=at - 29, iat=at - 400))
    verifier.verify_sync(issuer.token(nbf=at + 29))
    verifier.verify_sync(issuer.token(iat=at + 29))
    strict = make_verifier(leeway=0)
    with pytest.raises(InvalidToken, match="expired"):
        strict.verify_sync(issuer.token(exp=at, iat=at - 400))


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "ES256K", "RS1", ""])
def test_symmetric_and_unknown_algorithms_cannot_be_configured(
    make_verifier: MakeVerifier, alg: str
) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        make_verifier(algorithms=["ES256", alg])


def test_typ_check_off_still_refuses_other_jwt_types(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(require_at_jwt_typ=False)
    verifier.verify_sync(issuer.token(header={"typ": "JWT"}))
    verifier.verify_sync(issuer.token(header={"typ": DROP}))
    for typ in ("dpop+jwt", "logout+jwt", "secevent+jwt", "DPoP+JWT", 7):
        with pytest.raises(InvalidToken, match="typ"):
            verifier.verify_sync(issuer.token(header={"typ": typ}))


def test_required_claims_can_be_narrowed(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    verifier = make_verifier(required_claims=("iss", "exp", "aud"))
    token = verifier.verify_sync(issuer.token(sub=DROP, client_id=DROP, jti=DROP, iat=DROP))
    assert token.subject is None and token.client_id is None and token.jwt_id is None
    # exp stays required whatever the list says.
    with pytest.raises(InvalidToken, match="exp"):
        make_verifier(required_claims=()).verify_sync(issuer.token(exp=DROP))


# -- fuzzing -----------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
B64URL = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_invalid_token(verifier: JWTVerifier, token: Any) -> None:
    try:
        verifier.verify_sync(token)
    except InvalidToken:
        pass
    else:
        pytest.fail(f"accepted {token!r}")


def test_fuzz_random_text_and_bytes(make_verifier: MakeVerifier, issuer: TestIssuer) -> None:
    verifier = make_verifier()

    @FUZZ
    @given(st.text(max_size=200) | st.binary(max_size=200))
    def check(token: str | bytes) -> None:
        _only_invalid_token(verifier, token)

    check()

    @FUZZ
    @given(st.lists(B64URL, min_size=1, max_size=5).map(".".join))
    def check_dotted(token: str) -> None:
        _only_invalid_token(verifier, token)

    check_dotted()


def test_fuzz_signed_tokens_with_arbitrary_json(
    make_verifier: MakeVerifier, issuer: TestIssuer
) -> None:
    """Validly signed tokens whose header and claims hold arbitrary JSON values.

    Whatever the values, the outcome is an AccessToken or InvalidToken.
    """
    verifier = make_verifier()
    signer = keys()["es"]
    names = [*RFC9068_CLAIMS, "nbf", "scope", "scp"]

    @FUZZ
    @given(
        st.dictionaries(st.sampled_from(names), JSON, max_size=4),
        st.dictionaries(
            st.sampled_from(["typ", "kid", "crit", "b64", "cty", "x"]), JSON, max_size=2
        ),
        st.sets(st.sampled_from(names), max_size=2),
    )
    def check(values: dict[str, Any], header: dict[str, Any], dropped: set[str]) -> None:
        claims = issuer.claims(**{**values, **dict.fromkeys(dropped, DROP)})
        token = sign_compact(issuer.header(signer, **header), claims, signer)
        try:
            access = verifier.verify_sync(token)
        except InvalidToken:
            return
        assert isinstance(access, AccessToken)
        assert access.issuer == issuer.url
        assert all(isinstance(s, str) for s in access.scopes)

    check()
    assert issuer.jwks_requests == 1


def nested(levels: int) -> Any:
    """A value of ``levels`` arrays and objects, one inside the other."""
    value: Any = "x"
    for n in range(levels):
        value = [value] if n % 2 else {"a": value}
    return value


def test_nesting_is_bounded_the_same_wherever_the_verifier_is_called(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    """The payload object is level 1: 32 levels pass, 33 do not, at the top of the stack
    and deep in it (the JSON scanner's own limit moves with the stack's depth)."""
    verifier = make_verifier(cache_tokens=False)
    ok, deep = issuer.token(act=nested(31)), issuer.token(act=nested(32))
    header_deep = sign_compact(
        {**issuer.header(keys()["es"]), "x": nested(32)}, issuer.claims(), keys()["es"]
    )

    def check() -> None:
        assert verifier.verify_sync(ok).client_id == "billing-service"
        with pytest.raises(InvalidToken, match="nests deeper than 32 levels"):
            verifier.verify_sync(deep)
        with pytest.raises(InvalidToken, match="nests deeper than 32 levels"):
            verifier.verify_sync(header_deep)

    def down(frames: int) -> None:
        if frames:
            down(frames - 1)
        else:
            check()

    check()
    down(sys.getrecursionlimit() - 120)


def test_lone_surrogate_escapes_are_refused_and_escaped_pairs_read(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    """``\\ud800`` alone is no character: a claim holding one could not be written out."""
    verifier = make_verifier()
    signer = keys()["es"]

    def with_sub(escaped: str) -> str:
        claims = json.dumps(issuer.claims(sub="PLACEHOLDER"))
        return sign_compact(issuer.header(signer), claims.replace("PLACEHOLDER", escaped), signer)

    assert verifier.verify_sync(with_sub("svc-\\ud83d\\ude00")).subject == "svc-\U0001f600"
    assert verifier.verify_sync(with_sub("svc-\\u00e9")).subject == "svc-\u00e9"
    for lone in ("\\ud800", "svc-\\udfff", "\\ude00\\ud83d"):
        with pytest.raises(InvalidToken, match="payload has a string that is not valid Unicode"):
            verifier.verify_sync(with_sub(lone))
    header = json.dumps(issuer.header(signer, x="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800")
    with pytest.raises(InvalidToken, match="header has a string that is not valid Unicode"):
        verifier.verify_sync(sign_compact(header, issuer.claims(), signer))
