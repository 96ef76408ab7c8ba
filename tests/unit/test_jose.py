"""The one JOSE owner: its table, key policy, time rules and codec, and that nobody else does JOSE."""

from __future__ import annotations

import ast
import json
import pathlib
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authkestra._jose import base64url
from authkestra._jose.algorithms import (
    ALGORITHMS,
    ASYMMETRIC,
    HMAC,
    algorithms_for_key,
    default_algorithm,
    fits,
)
from authkestra._jose.claims import ClaimError, TimeRules
from authkestra._jose.compact import MalformedJWS, parse_compact, peek_claims
from authkestra._jose.keys import (
    UnusableKey,
    generate_key,
    import_jwk,
    import_pem,
    import_public_jwk,
    rsa_modulus_bits,
)

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "authkestra"

# -- the algorithm table -----------------------------------------------------------------------


def test_hmac_is_never_asymmetric() -> None:
    assert set(HMAC) == {"HS256", "HS384", "HS512"}
    assert not set(HMAC) & set(ASYMMETRIC)
    assert "none" not in ALGORITHMS


@pytest.mark.parametrize(
    ("alg", "kty", "crv", "key_alg", "expected"),
    [
        ("ES256", "EC", "P-256", None, True),
        ("ES256", "EC", "P-384", None, False),
        ("ES384", "EC", "P-384", None, True),
        ("ES256", "RSA", None, None, False),
        ("RS256", "RSA", None, None, True),
        ("PS512", "RSA", None, "PS512", True),
        ("RS256", "RSA", None, "PS256", False),
        ("EdDSA", "OKP", "Ed25519", None, True),
        ("EdDSA", "OKP", "Ed448", None, True),
        ("Ed25519", "OKP", "Ed448", None, False),
        ("Ed25519", "OKP", "Ed25519", "EdDSA", True),  # one algorithm, two names
        ("EdDSA", "OKP", "Ed25519", "Ed25519", True),
        ("EdDSA", "OKP", "Ed448", "Ed25519", False),
        ("EdDSA", "OKP", "X25519", None, False),
        ("HS256", "oct", None, None, True),
        ("none", "oct", None, None, False),
    ],
)
def test_fits(alg: str, kty: str, crv: str | None, key_alg: str | None, expected: bool) -> None:
    assert fits(alg, kty, crv, key_alg) is expected


def test_algorithms_for_a_key_and_its_default() -> None:
    assert algorithms_for_key("EC", "P-256") == ("ES256",)
    assert algorithms_for_key("RSA") == ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    assert algorithms_for_key("OKP", "Ed25519") == ("EdDSA", "Ed25519")
    assert algorithms_for_key("OKP", "X25519") == ()
    assert algorithms_for_key("oct") == ()  # never through the asymmetric list
    assert default_algorithm("EC", "P-521") == "ES512"
    assert default_algorithm("RSA", None) == "RS256"
    assert default_algorithm("OKP", "X25519") is None


# -- keys ------------------------------------------------------------------------------------


def _small_rsa() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    numbers = private.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "n": base64url.encode(n), "e": "AQAB"}


def test_small_rsa_keys_are_refused_before_joserfc_sees_them() -> None:
    small = _small_rsa()
    assert rsa_modulus_bits(small["n"]) == 1024
    with pytest.raises(UnusableKey, match="1024 bits: at least 2048"):
        import_public_jwk(small)
    with pytest.raises(UnusableKey, match="at least 2048"):
        import_jwk(small)


def test_small_rsa_pem_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UnusableKey, match="at least 2048"):
        import_pem(pem)


@pytest.mark.parametrize(
    ("jwk", "words"),
    [
        ("a string", "not a JSON object"),
        ({"kty": "oct", "k": "AAAA"}, "private or symmetric"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}, "private"),
        ({"kty": "XYZ"}, "kty"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, "could not be read"),
        ({"kty": "RSA", "n": "!!", "e": "AQAB"}, "0 bits"),
    ],
)
def test_public_jwk_refusals(jwk: Any, words: str) -> None:
    with pytest.raises(UnusableKey, match=words):
        import_public_jwk(jwk)


def test_modulus_bits_is_strict_base64url() -> None:
    assert rsa_modulus_bits("AQAB") == 17
    assert rsa_modulus_bits("AQAB=") == 0
    assert rsa_modulus_bits(None) == 0


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"])
def test_generated_keys_fit_their_algorithm(alg: str) -> None:
    key = generate_key(alg, {"kid": "k1"})
    public = key.as_dict(private=False)
    assert key.is_private and fits(alg, public["kty"], public.get("crv"))
    assert isinstance(import_public_jwk(public), (ECKey, OKPKey, RSAKey))


def test_no_key_for_hmac_or_unknown() -> None:
    for alg in ("HS256", "none", "XX1"):
        with pytest.raises(UnusableKey):
            generate_key(alg)


# -- the time rules --------------------------------------------------------------------------

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        ({}, "missing"),
        ({"exp": NOW - 31}, "expired"),
        ({"exp": NOW - 30}, "expired"),
        ({"exp": "soon"}, "not a number"),
        ({"exp": True}, "not a number"),
        ({"exp": None}, "not a number"),
        ({"exp": float("nan")}, "not a number"),
        ({"exp": 10**400}, "out of range"),
        ({"exp": NOW + 3600, "nbf": NOW + 31}, "not yet valid"),
        ({"exp": NOW + 3600, "nbf": None}, "not a number"),
        ({"exp": NOW + 3600, "iat": NOW + 31}, "in the future"),
        ({"exp": NOW + 3600, "iat": -(10**400)}, "out of range"),
    ],
)
def test_time_rules_refuse(claims: dict[str, Any], problem: str) -> None:
    with pytest.raises(ClaimError) as caught:
        TimeRules(leeway=30).check(claims, NOW)
    assert caught.value.problem == problem


def test_time_rules_accept_within_leeway_and_give_exp_and_iat() -> None:
    rules = TimeRules(leeway=30)
    assert rules.check({"exp": NOW - 29, "iat": NOW + 30, "nbf": NOW + 30}, NOW) == (
        NOW - 29,
        NOW + 30,
    )
    assert rules.check({"exp": NOW + 1.5}, NOW) == (NOW + 1.5, None)


def test_time_rules_bounds_and_names() -> None:
    ahead = TimeRules(leeway=5, max_ahead=300)
    with pytest.raises(ClaimError) as caught:
        ahead.check({"exp": NOW + 306}, NOW)
    assert caught.value.describe("the client assertion") == (
        "the client assertion's exp is more than 300 s ahead"
    )
    assert ahead.check({"exp": NOW + 305}, NOW)[0] == NOW + 305
    proof = TimeRules(leeway=5, require=("iat",), names=("iat",), max_age=60)
    assert proof.check({"iat": NOW - 60, "exp": 0}, NOW) == (None, NOW - 60)  # exp not looked at
    with pytest.raises(ClaimError, match="iat too old"):
        proof.check({"iat": NOW - 61}, NOW)
    with pytest.raises(ClaimError, match="iat missing"):
        proof.check({}, NOW)
    optional = TimeRules(leeway=0, require=())
    assert optional.check({}, NOW) == (None, None)


def test_claim_errors_in_words() -> None:
    assert ClaimError("exp", "expired").describe() == "the token has expired"
    assert ClaimError("exp", "missing").describe() == "the token has no exp claim"
    assert (
        ClaimError("nbf", "not a number").describe("it", "its") == "its nbf claim is not a number"
    )


# -- the codec and the reader ----------------------------------------------------------------


@pytest.mark.parametrize("bad", ["AQAB=", "AQ+B", "AQ/B", "A", "AQ B", "é"])
def test_base64url_is_strict(bad: str) -> None:
    with pytest.raises(ValueError):
        base64url.decode(bad)


def test_base64url_round_trip() -> None:
    for data in (b"", b"\x00", b"\xff\xfe", bytes(range(256))):
        assert base64url.decode(base64url.encode(data)) == data


def _jws(header: Any, claims: Any, signature: bytes = b"sig") -> str:
    def part(value: Any) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64url.encode(raw)

    return f"{part(header)}.{part(claims)}.{base64url.encode(signature)}"


def test_the_reader_names_the_part_in_the_callers_words() -> None:
    with pytest.raises(MalformedJWS) as caught:
        parse_compact(_jws({"alg": "ES256"}, b"[1]"), max_length=1000)
    assert caught.value.describe("the token").startswith("the token's payload is not a JSON object")
    assert caught.value.describe("it", "its").startswith("its payload")
    with pytest.raises(MalformedJWS) as caught:
        parse_compact("a.b", max_length=1000)
    assert caught.value.describe("the DPoP proof") == (
        "the DPoP proof is not a JWS in compact form (three dot-separated parts)"
    )


def test_the_reader_refuses_duplicates_crit_and_lone_surrogates() -> None:
    duplicate = base64url.encode(b'{"alg": "ES256", "alg": "none"}')
    with pytest.raises(MalformedJWS, match="duplicate member"):
        parse_compact(f"{duplicate}.e30.", max_length=1000)
    with pytest.raises(MalformedJWS, match="critical"):
        parse_compact(_jws({"alg": "ES256", "crit": ["x"]}, {}), max_length=1000)
    with pytest.raises(MalformedJWS, match="not valid Unicode"):
        parse_compact(_jws({"alg": "ES256"}, b'{"jti": "\\ud800"}'), max_length=1000)


def test_peek_claims_reads_only_well_formed_tokens() -> None:
    token = _jws({"alg": "ES256"}, {"exp": 5})
    assert peek_claims(token) == {"exp": 5}
    assert peek_claims("opaque-token") is None
    padded = token.split(".")
    padded[1] += "="
    assert peek_claims(".".join(padded)) is None  # the lenient decoder would have read it


# -- one owner -------------------------------------------------------------------------------

#: Key classes whose import and generation only authkestra/_jose calls.
_KEY_CLASSES = {"ECKey", "OKPKey", "RSAKey", "OctKey", "JWKRegistry"}
#: Decoders of base64 that JOSE code would use, and who else may: not for JOSE.
_DECODERS = {"urlsafe_b64decode"}
_NOT_JOSE = {"server/secret_box.py"}  # its own sealed-blob format (padded base64url)
#: Modules that only authkestra/_jose may import from joserfc.
_JOSE_MODULES = {"joserfc.jwt", "joserfc.jws", "joserfc.jwa"}


def _sources() -> list[pathlib.Path]:
    return [p for p in SRC.rglob("*.py") if "_jose" not in p.parts]


def test_nobody_else_decodes_base64url_or_imports_keys() -> None:
    offenders = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', 0)}"
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("import_key", "generate_key")
                and isinstance(node.value, ast.Name)
                and node.value.id in _KEY_CLASSES
            ):
                offenders.append(f"{where} {node.value.id}.{node.attr}")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in _DECODERS
                and str(path.relative_to(SRC)) not in _NOT_JOSE
            ):
                offenders.append(f"{where} {node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module in _JOSE_MODULES:
                offenders.append(f"{where} {node.module}")
            if isinstance(node, ast.ImportFrom) and node.module == "joserfc":
                offenders.append(f"{where} joserfc")
    assert offenders == []


def test_one_definition_of_the_policy_numbers() -> None:
    offenders = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for name in ("MIN_RSA_BITS =", "PRIVATE_MEMBERS =", '"EC": ECKey'):
            if name in text:
                offenders.append(f"{path.relative_to(SRC)}: {name}")
    assert offenders == []
