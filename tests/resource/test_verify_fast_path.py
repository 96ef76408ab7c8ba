"""The verifier's fast path reads tokens exactly as the reference parser does.

``read_compact`` (the fast path, taken for a token whose header the verifier has seen
before) must never accept what ``parse_compact`` (the reference, which says what is
wrong) refuses, and must read what it accepts the same way. The claim checks have a
fast path of their own for the usual claim types; both are held to the same outcomes here.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authkestra import InvalidToken
from authkestra._clock import SystemClock
from authkestra._jose.compact import MalformedJWS, json_object, parse_compact, read_compact
from authkestra.resource import AccessToken
from authkestra.resource.jwks import KeySet
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
from tests.resource.test_forged_tokens import CORPUS

MAX = 16_384
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(token: object) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes] | None:
    """What parse_compact makes of ``token``; None when it refuses it."""
    try:
        parsed = parse_compact(token, max_length=MAX)
    except MalformedJWS:
        return None
    return parsed.header, parsed.claims, parsed.signing_input, parsed.signature


def known(token: object) -> dict[bytes, str]:
    """The known headers a verifier could have when ``token`` comes: its header, if valid.

    A verifier only remembers header segments the reference has read (base64url, a JSON
    object, no ``crit``): for those the fast path skips decoding.
    """
    head = token.split(".")[0] if isinstance(token, str) else ""
    return {head.encode(): "known"} if reference(f"{head}.e30.") is not None else {}


def check_same(token: object) -> None:
    """The fast path either gives up or reads ``token`` as the reference does."""
    expected = reference(token)
    fast = read_compact(token, MAX, known(token))
    if fast is None:
        return
    assert expected is not None, f"the fast path accepted a token the reference refuses: {token!r}"
    assert fast[0] == "known"
    assert fast[1:] == expected[1:]
    assert type(fast[1]) is dict


# -- the parser ------------------------------------------------------------------------------


def test_a_plain_token_takes_the_fast_path(issuer: TestIssuer) -> None:
    token = issuer.token("rs")
    head = token.split(".")[0].encode()
    fast = read_compact(token, MAX, {head: "known"})
    assert fast is not None
    expected = reference(token)
    assert expected is not None and fast[1:] == expected[1:]
    assert read_compact(token, MAX, {}) is None  # an unknown header is left to the reference


@pytest.mark.parametrize(("build", "reason"), [pytest.param(b, r, id=n) for n, b, r in CORPUS])
def test_every_forgery_reads_the_same(issuer: TestIssuer, build: Any, reason: str) -> None:
    check_same(build(issuer))


def _with_payload(issuer: TestIssuer, payload: bytes) -> str:
    return sign_compact(issuer.header(keys()["es"]), payload, keys()["es"])


@pytest.mark.parametrize(
    "payload",
    [
        b' {"a": 1}',  # whitespace around the object: valid JSON, left to the reference
        b'{"a": 1} ',
        b'\n{"a": 1}\n',
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 BOM: refused by both
        b'{"a": 1}{"b": 2}',
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "b": 2}}',
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": "\\ud800"}',  # a lone surrogate escape: json reads it, as the reference does
        b'{"a": "\xff"}',
        b"[1]",
        b'"{}"',
        b"{}",
        b"",
        b"   ",
        b'{"a": [' * 1200 + b"]}" * 1200,  # nested too deeply, within the length limit
    ],
)
def test_json_edge_cases_read_the_same(issuer: TestIssuer, payload: bytes) -> None:
    check_same(_with_payload(issuer, payload))


def test_whitespace_around_the_payload_is_still_accepted(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    """Valid JSON the fast path leaves to the reference is accepted as before."""
    verifier = make_verifier()
    claims = json.dumps(issuer.claims()).encode()
    plain = verifier.verify_sync(_with_payload(issuer, claims))  # the header is now known
    spaced = verifier.verify_sync(_with_payload(issuer, b" \n" + claims + b"\t "))
    assert spaced == plain


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s + "=",
        lambda s: s + "==",
        lambda s: s[:-1] + "+",
        lambda s: s[:-1] + "/",
        lambda s: s[:5] + "=" + s[5:],
        lambda s: s + "A",  # length 1 mod 4 (for some lengths), or a changed value
        lambda s: s + "AAAAA",
        lambda s: s[:-1],
        lambda s: s[:-2],
        lambda s: s + "\n",
        lambda s: s + "\x00",
        lambda s: " " + s,
        lambda s: s + "é",
        lambda s: s.replace("A", "\uff21", 1),
        lambda s: "",
    ],
)
@pytest.mark.parametrize("index", [1, 2])
def test_base64_edge_cases_read_the_same(issuer: TestIssuer, change: Any, index: int) -> None:
    parts = issuer.token("es").split(".")
    parts[index] = change(parts[index])
    check_same(".".join(parts))


def test_non_canonical_trailing_bits_are_read_as_before(issuer: TestIssuer) -> None:
    """Unused low bits in the last base64 character were never checked; they still are not."""
    parts = issuer.token("es").split(".")
    sig = parts[2]
    assert len(sig) % 4 == 2  # 64 bytes: the last character carries 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    parts[2] = sig[:-1] + alphabet[last | 0x0F]
    token = ".".join(parts)
    check_same(token)
    assert read_compact(token, MAX, {parts[0].encode(): "known"}) is not None


def test_length_limit_and_types(issuer: TestIssuer) -> None:
    token = issuer.token("es")
    head = {token.split(".")[0].encode(): "known"}
    assert read_compact(token, len(token), head) is not None
    assert read_compact(token, len(token) - 1, head) is None
    for other in (None, token.encode(), 42, [token]):
        assert read_compact(other, MAX, head) is None

    class Text(str):
        pass

    assert read_compact(Text(token), MAX, head) is None  # left to the reference


B64URL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ")


@FUZZ
@given(st.lists(B64URL, min_size=1, max_size=4).map(".".join))
def test_fuzz_segments_read_the_same(token: str) -> None:
    check_same(token)


JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
).map(json.dumps)


@FUZZ
@given(
    st.one_of(
        JSON_TEXT,
        st.tuples(JSON_TEXT, st.sampled_from(["", " ", "\n", "x", ",", "}", "{}"])).map(
            lambda t: t[0] + t[1]
        ),
        st.text(alphabet='{}[]":,0123456789aeNIn \\tru', max_size=30),
    ),
    st.binary(max_size=3),
)
def test_fuzz_payloads_read_the_same(text: str, junk: bytes) -> None:
    header = segment({"alg": "ES256", "typ": "at+jwt", "kid": "es-1"})
    for payload in (text.encode(), text.encode() + junk):
        check_same(f"{header}.{b64url(payload)}.{b64url(b'x' * 64)}")


@FUZZ
@given(st.binary(max_size=80))
def test_fuzz_binary_payloads_read_the_same(payload: bytes) -> None:
    header = segment({"alg": "ES256"})
    check_same(f"{header}.{b64url(payload)}.")


def test_json_object_agrees_with_the_reference() -> None:
    assert json_object(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    for bad in (b'{"a": 1, "a": 1}', b" {}", b"{} ", b"[]", b"\xff", b"{", b'{"a": NaN}'):
        assert json_object(bad) is None


# -- the verifier ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["es", "ed", "rs"])
def test_first_and_later_tokens_verify_the_same(
    issuer: TestIssuer, make_verifier: MakeVerifier, key: str
) -> None:
    """The first token of a header goes the long way, the next ones the fast way."""
    verifier = make_verifier(cache_tokens=False)
    slow: list[str] = []
    parse_fully = verifier._parse_fully

    def counting(token: str) -> Any:
        slow.append(token)
        return parse_fully(token)

    verifier._parse_fully = counting  # type: ignore[method-assign]
    token = issuer.token(key, scope="read write", jti="j-1")
    first = verifier.verify_sync(token)  # the reference parser; the header becomes known
    assert len(verifier._headers) == 1
    again = verifier.verify_sync(token)  # the fast path
    assert again == first and again is not first
    assert again.claims == first.claims
    assert anyio.run(verifier.verify, token) == first
    assert slow == [token]


def test_a_new_header_after_64_still_verifies(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(cache_tokens=False)
    for n in range(70):
        verifier.verify_sync(issuer.token(header={"x": n}))
    assert len(verifier._headers) == 64
    assert verifier.verify_sync(issuer.token(header={"x": 69})).client_id == "billing-service"


def test_a_refused_header_is_never_remembered(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    for header in ({"typ": "JWT"}, {"alg": "ES512"}, {"kid": 1}, {"crit": ["x"]}):
        with pytest.raises(InvalidToken):
            verifier.verify_sync(issuer.token(header=header))
    assert verifier._headers == {}


def test_forged_headers_are_not_remembered(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    """Only headers of tokens whose signature held: forged ones cannot fill the table and
    leave the issuer's next header (a rotated key) to the long way forever."""
    verifier = make_verifier()
    for n in range(100):
        forged = issuer.token("attacker-es", header={"kid": "es-1", "x": n})
        with pytest.raises(InvalidToken, match="signature is not valid"):
            verifier.verify_sync(forged)
        with pytest.raises(InvalidToken, match="key set"):
            verifier.verify_sync(issuer.token("attacker-es", header={"x": n}))
    assert verifier._headers == {}
    verifier.verify_sync(issuer.token("es"))
    assert len(verifier._headers) == 1


def test_a_known_header_does_not_excuse_a_bad_payload_or_signature(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    good = issuer.token("es")
    verifier.verify_sync(good)
    head, payload, sig = good.split(".")
    other = issuer.token("es", scope="admin").split(".")[1]
    cases = {
        f"{head}.{other}.{sig}": "signature is not valid",
        f"{head}.{payload}.": "signature is not valid",
        f"{head}.{payload}.{sig}=": "signature is not base64url",
        f"{head}.{payload}=.{sig}": "payload is not base64url",
        f"{head}..{sig}": "payload is not base64url",
        f"{head}.{b64url(b'[1]')}.{sig}": "payload is not a JSON object",
        f"{head}.{payload}.{sig}.": "three dot-separated parts",
    }
    for token, reason in cases.items():
        with pytest.raises(InvalidToken, match=reason):
            verifier.verify_sync(token)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [10**400, -(10**400), 2**53, -(2**53), 2**63, 1e300, -1e300])
def test_huge_times_are_invalid_token_never_overflow(
    issuer: TestIssuer, make_verifier: MakeVerifier, claim: str, value: float
) -> None:
    """Integers beyond a float were an OverflowError; now they are out of range."""
    verifier = make_verifier()
    token = issuer.token(**{claim: value})
    if abs(value) > 1e308:
        with pytest.raises(InvalidToken, match=f"the token.s {claim} claim is out of range"):
            verifier.verify_sync(token)
    elif value < 0 and claim != "exp":  # long ago: a valid nbf or iat
        assert verifier.verify_sync(token).client_id == "billing-service"
    else:
        with pytest.raises(InvalidToken, match=r"exp|nbf|iat"):
            verifier.verify_sync(token)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_float_times_are_checked_like_integer_ones(
    issuer: TestIssuer, make_verifier: MakeVerifier, claim: str
) -> None:
    at = issuer.clock.now().timestamp()
    verifier = make_verifier(leeway=0)
    late = {"exp": at - 0.5, "nbf": at + 0.5, "iat": at + 0.5}[claim]
    ok = {"exp": at + 0.5, "nbf": at - 0.5, "iat": at - 0.5}[claim]
    extra = {"iat": at - 100} if claim == "exp" else {}
    verifier.verify_sync(issuer.token(**{claim: ok}))
    with pytest.raises(InvalidToken, match=claim if claim != "exp" else "expired"):
        verifier.verify_sync(issuer.token(**{claim: late, **extra}))


def test_the_system_clock_is_read_directly(issuer: TestIssuer, make_verifier: MakeVerifier) -> None:
    """With the real clock the verifier reads time.time(): the same outcomes."""
    verifier = make_verifier(clock=SystemClock())
    at = int(datetime.now(timezone.utc).timestamp())
    verifier.verify_sync(issuer.token(iat=at, exp=at + 60))
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify_sync(issuer.token(iat=at - 400, exp=at - 31))
    with pytest.raises(InvalidToken, match="future"):
        verifier.verify_sync(issuer.token(iat=at + 60, exp=at + 600))


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": None}, "sub claim is not a string"),
        ({"jti": 1}, "jti claim is not a string"),
        ({"client_id": ["a"]}, "client_id claim is not a string"),
        ({"aud": [AUDIENCE, 1]}, "aud claim is missing or malformed"),
        ({"aud": None}, "aud claim is missing or malformed"),
        ({"aud": "https://other.test/"}, "another audience"),
        ({"aud": ["https://other.test/"]}, "another audience"),
    ],
)
def test_unusual_claims_take_the_long_way_to_the_same_refusal(
    issuer: TestIssuer, make_verifier: MakeVerifier, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidToken, match=reason):
        make_verifier().verify_sync(issuer.token(**claims))


def test_optional_claims_may_be_absent_when_not_required(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(required_claims=("iss", "exp", "aud"))
    access = verifier.verify_sync(issuer.token(sub=DROP, jti=DROP, iat=DROP, scope=DROP))
    assert access.subject is None and access.jwt_id is None and access.scopes == ()


# -- the AccessToken the verifier builds -----------------------------------------------------


def test_the_verifiers_access_token_is_a_plain_access_token(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    made = make_verifier(cache_tokens=False).verify_sync(issuer.token(jti="j", scope="a b"))
    plain = AccessToken(
        subject=made.subject,
        client_id=made.client_id,
        scopes=made.scopes,
        audience=made.audience,
        expires_at=made.expires_at,
        jwt_id=made.jwt_id,
        issuer=made.issuer,
        claims=dict(made.claims),
    )
    assert type(made) is AccessToken
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    assert isinstance(made.claims, MappingProxyType) and made.claims == plain.claims
    with pytest.raises(AttributeError):
        made.scopes = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        made.claims["scope"] = "admin"  # type: ignore[index]


# -- the key set ----------------------------------------------------------------------------


def test_key_lookups_are_remembered_only_when_found() -> None:
    published = [keys()[name].public_jwk() for name in ("es", "ed", "rs")]
    key_set = KeySet({"keys": published})
    es = key_set.find("es-1", "ES256")
    assert es is not None and key_set.find("es-1", "ES256") is es
    for n in range(1000):  # kids a forger makes up are never remembered
        assert key_set.find(f"kid-{n}", "ES256") is None
    assert key_set.find("es-1", "RS256") is None
    assert key_set.find(None, "EdDSA") is key_set.find("ed-1", "EdDSA")
    assert len(key_set._found) == 3


def test_verify_with_every_kid_forged_fetches_once(
    issuer: TestIssuer, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier()
    verifier.verify_sync(issuer.token())
    for n in range(20):
        with pytest.raises(InvalidToken, match="key set"):
            verifier.verify_sync(issuer.token(header={"kid": f"forged-{n}"}))
    assert issuer.jwks_requests == 1
    assert verifier.jwks.keys is not None and len(verifier.jwks.keys._found) == 1
