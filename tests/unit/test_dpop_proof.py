"""The one DPoP proof reader (authkestra._protocol.dpop_proof): what passes, and that
everything else, however malformed, is a ProofError with a reason and never another exception.
"""

from __future__ import annotations

import base64
import json
import random
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from authkestra._jose.signing import jws_registry
from authkestra._protocol.dpop import access_token_hash, generate_dpop_key, proof
from authkestra._protocol.dpop_proof import (
    DPOP_PROOF_ALGS,
    MAX_PROOF_LENGTH,
    ProofError,
    normalized_htu,
    read_proof,
)

NOW = 1_700_000_000
URL = "https://api.example.test/orders"
TOKEN = "the-access-token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _public(key: Any) -> dict[str, Any]:
    return {k: v for k, v in key.as_dict(private=False).items() if k not in ("kid", "alg", "use")}


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "jti": "jti-0123456789abcdef",
        "htm": "GET",
        "htu": URL,
        "iat": NOW,
        "ath": access_token_hash(TOKEN),
    }
    for name, value in changes.items():
        if value is _DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


_DROP = object()


def _sign(
    key: Any,
    alg: str,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    raw_header: bytes | None = None,
    raw_claims: bytes | None = None,
) -> str:
    """A compact JWS signed by hand, so that any header or payload can be forged."""
    head: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": _public(key)}
    for name, value in (header or {}).items():
        if value is _DROP:
            head.pop(name, None)
        else:
            head[name] = value
    first = _b64(raw_header if raw_header is not None else json.dumps(head).encode())
    second = _b64(
        raw_claims if raw_claims is not None else json.dumps(claims or _claims()).encode()
    )
    signing_input = f"{first}.{second}".encode("ascii")
    signature = jws_registry(alg).algorithms[alg].sign(signing_input, key)
    return f"{first}.{second}.{_b64(signature)}"


def _read(token: object, **options: Any) -> Any:
    settings: dict[str, Any] = {
        "method": "GET",
        "url": URL,
        "now": NOW,
        "max_age": 60,
        "max_future": 5,
        "access_token": TOKEN,
    }
    settings.update(options)
    return read_proof(token, **settings)


def _refused(token: object, reason: str = "", **options: Any) -> ProofError:
    with pytest.raises(ProofError) as caught:
        _read(token, **options)
    assert reason in caught.value.reason, caught.value.reason
    assert str(caught.value) == caught.value.reason
    return caught.value


@pytest.fixture(scope="module")
def ec() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, private=True)


# -- what passes ----------------------------------------------------------------------------


def test_a_proof_from_our_client_passes() -> None:
    key = generate_dpop_key()
    made = proof(key, "get", URL + "?page=2#top", now=NOW, access_token=TOKEN)
    checked = _read(made, jkt=key.thumbprint)
    assert checked.jkt == key.thumbprint
    assert checked.iat == NOW
    assert checked.jti == checked.claims["jti"]
    assert checked.claims["htu"] == URL


@pytest.mark.parametrize(
    ("alg", "make"),
    [
        ("ES256", lambda: ECKey.generate_key("P-256", private=True)),
        ("EdDSA", lambda: OKPKey.generate_key("Ed25519", private=True)),
        ("EdDSA", lambda: OKPKey.generate_key("Ed448", private=True)),
        ("Ed25519", lambda: OKPKey.generate_key("Ed25519", private=True)),
        ("RS256", None),
        ("PS256", None),
    ],
    ids=["ES256", "EdDSA-Ed25519", "EdDSA-Ed448", "Ed25519", "RS256", "PS256"],
)
def test_every_accepted_algorithm(alg: str, make: Callable[[], Any] | None, rsa: RSAKey) -> None:
    key = make() if make is not None else rsa
    checked = _read(_sign(key, alg), jkt=key.thumbprint())
    assert checked.jkt == key.thumbprint()
    assert alg in DPOP_PROOF_ALGS


def test_our_client_leaves_userinfo_out_of_htu() -> None:
    key = generate_dpop_key()
    made = proof(key, "GET", "https://user:pw@api.example.test/orders", now=NOW, access_token=TOKEN)
    checked = _read(made)
    assert checked.claims["htu"] == URL


def test_without_an_access_token_ath_is_not_required(ec: ECKey) -> None:
    assert _read(_sign(ec, "ES256", claims=_claims(ath=_DROP)), access_token=None)


def test_typ_is_case_insensitive_and_method_upper_cased(ec: ECKey) -> None:
    assert _read(_sign(ec, "ES256", header={"typ": "DPoP+JWT"}), method="get")


def test_the_window_edges(ec: ECKey) -> None:
    assert _read(_sign(ec, "ES256", claims=_claims(iat=NOW - 60)))
    assert _read(_sign(ec, "ES256", claims=_claims(iat=NOW + 5)))
    assert _read(_sign(ec, "ES256", claims=_claims(iat=NOW + 0.5)))
    _refused(_sign(ec, "ES256", claims=_claims(iat=NOW - 61)), "too old")
    _refused(_sign(ec, "ES256", claims=_claims(iat=NOW + 6)), "future")


def test_surrounding_blanks_are_ignored(ec: ECKey) -> None:
    assert _read(" " + _sign(ec, "ES256") + "\t")


def test_nonce_when_asked_for(ec: ECKey) -> None:
    def valid(nonce: str) -> bool:
        return nonce == "n-1"

    assert _read(_sign(ec, "ES256", claims=_claims(nonce="n-1")), nonce_is_valid=valid)
    for nonce in (_DROP, "n-2", 5, None, ["n-1"]):
        error = _refused(
            _sign(ec, "ES256", claims=_claims(nonce=nonce)), "nonce", nonce_is_valid=valid
        )
        assert error.use_nonce
    # Any other fault is reported first: a wrong proof is not asked for a nonce.
    other = _refused(
        _sign(ec, "ES256", claims=_claims(htu="https://evil.test/orders")),
        "htu",
        nonce_is_valid=valid,
    )
    assert not other.use_nonce


# -- htu normalisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example/a/b?q=1#f", "https://api.example/a/b"),
        ("HTTPS://API.Example:443/a", "https://api.example/a"),
        ("http://api.example:80", "http://api.example/"),
        ("http://api.example:8080/A", "http://api.example:8080/A"),
        ("https://user:pw@api.example/a", "https://api.example/a"),
        ("http://[::1]:8443/token", "http://[::1]:8443/token"),
        ("http://[::1]:80/token", "http://[::1]/token"),
    ],
)
def test_normalized_htu(url: str, expected: str) -> None:
    assert normalized_htu(url) == expected
    assert normalized_htu(expected) == expected  # idempotent


def test_normalized_htu_refuses_a_bad_port() -> None:
    with pytest.raises(ValueError):
        normalized_htu("https://api.example:99999/a")


@pytest.mark.parametrize(
    "claimed",
    [
        "https://API.example.test:443/orders",
        "https://api.example.test/orders?x=1",
        "https://api.example.test/orders#f",
    ],
)
def test_htu_compares_after_normalisation(ec: ECKey, claimed: str) -> None:
    assert _read(_sign(ec, "ES256", claims=_claims(htu=claimed)))


@pytest.mark.parametrize(
    "claimed",
    [
        "https://api.example.test/Orders",  # the path is case-sensitive
        "http://api.example.test/orders",
        "https://api.example.test:8443/orders",
        "https://other.example.test/orders",
        "https://api.example.test:99999/orders",
        "https://[::1/orders",
        "orders",
        "",
    ],
)
def test_htu_mismatches(ec: ECKey, claimed: str) -> None:
    _refused(_sign(ec, "ES256", claims=_claims(htu=claimed)), "htu")


def test_a_request_url_that_is_not_one_refuses_the_proof(ec: ECKey) -> None:
    _refused(_sign(ec, "ES256"), "htu", url="https://api.example.test:99999/orders")


# -- refusals, one kind at a time ------------------------------------------------------------


def _segments(ec: ECKey) -> list[str]:
    return _sign(ec, "ES256").split(".")


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda ec: None, "malformed"),
        (lambda ec: b"a.b.c", "malformed"),
        (lambda ec: 12, "malformed"),
        (lambda ec: "", "malformed"),
        (lambda ec: "   ", "malformed"),
        (lambda ec: "a" * (MAX_PROOF_LENGTH + 1), "malformed"),
        (lambda ec: "a.b", "malformed"),
        (lambda ec: "a.b.c.d", "malformed"),
        (lambda ec: "..", "malformed"),
        (lambda ec: ".".join(["", *_segments(ec)[1:]]), "malformed"),
        (lambda ec: ".".join([_segments(ec)[0], "", _segments(ec)[2]]), "malformed"),
        (lambda ec: "!!.??.**", "malformed"),
        (lambda ec: _segments(ec)[0] + "=." + ".".join(_segments(ec)[1:]), "malformed"),
        (lambda ec: "abcde." + ".".join(_segments(ec)[1:]), "malformed"),  # impossible length
        (lambda ec: ".".join([*_segments(ec)[:2], _segments(ec)[2] + "="]), "malformed"),
        (lambda ec: ".".join([*_segments(ec)[:2], "é"]), "malformed"),
        (lambda ec: _sign(ec, "ES256", raw_header=b"not json"), "malformed"),
        (lambda ec: _sign(ec, "ES256", raw_header=b"[1, 2]"), "malformed"),
        (lambda ec: _sign(ec, "ES256", raw_header=b"\xff\xfe{}"), "malformed"),
        (
            lambda ec: _sign(ec, "ES256", raw_header=b'{"alg": "ES256", "alg": "ES256"}'),
            "malformed",
        ),
        (lambda ec: _sign(ec, "ES256", raw_header=b"[" * 5000 + b"]" * 5000), "malformed"),
        (lambda ec: _sign(ec, "ES256", raw_claims=b'{"iat": NaN}'), "malformed"),
        (lambda ec: _sign(ec, "ES256", raw_claims=b'"a string"'), "malformed"),
        (lambda ec: _sign(ec, "ES256", raw_claims=b'{"a": ' * 3000), "malformed"),
        (lambda ec: _sign(ec, "ES256", header={"crit": ["exp"]}), "critical"),
        (lambda ec: _sign(ec, "ES256", header={"b64": False}), "critical"),
        (lambda ec: _sign(ec, "ES256", header={"typ": _DROP}), "typ"),
        (lambda ec: _sign(ec, "ES256", header={"typ": "JWT"}), "typ"),
        (lambda ec: _sign(ec, "ES256", header={"typ": ["dpop+jwt"]}), "typ"),
        (lambda ec: _sign(ec, "ES256", header={"alg": _DROP}), "algorithm"),
        (lambda ec: _sign(ec, "ES256", header={"alg": "ES384"}), "algorithm"),
        (lambda ec: _sign(ec, "ES256", header={"alg": ["ES256"]}), "algorithm"),
        (
            lambda ec: _sign(ec, "ES256", header={"alg": "none"}).rsplit(".", 1)[0] + ".",
            "algorithm",
        ),
        (lambda ec: _sign(ec, "ES256", header={"jwk": _DROP}), "jwk"),
        (lambda ec: _sign(ec, "ES256", header={"jwk": "a key"}), "jwk"),
        (lambda ec: _sign(ec, "ES256", header={"jwk": ec.as_dict(private=True)}), "public"),
        (
            lambda ec: _sign(ec, "ES256", header={"jwk": {**_public(ec), "alg": "ES384"}}),
            "algorithm",
        ),
        (lambda ec: _sign(ec, "ES256", header={"jwk": {**_public(ec), "crv": "P-384"}}), "key for"),
        (lambda ec: _sign(ec, "ES256", header={"jwk": {**_public(ec), "kty": "RSA"}}), "key for"),
        (lambda ec: _sign(ec, "ES256", header={"jwk": {**_public(ec), "x": "!!"}}), "valid key"),
        (lambda ec: _sign(ec, "ES256", header={"jwk": {**_public(ec), "x": 5}}), "valid key"),
        (
            lambda ec: _sign(ec, "ES256", header={"jwk": {**_public(ec), "y": _b64(b"\1" * 32)}}),
            "valid key",
        ),
        (lambda ec: _sign(ec, "ES256", header={"jwk": {"kty": "EC", "crv": "P-256"}}), "valid key"),
        (
            lambda ec: _sign(ec, "ES256", header={"jwk": _public(ECKey.generate_key("P-256"))}),
            "signature",
        ),
        (lambda ec: ".".join(_segments(ec)[:2]) + ".", "signature"),
        (lambda ec: ".".join(_segments(ec)[:2]) + ".AAAA", "signature"),
        (lambda ec: _tampered(_sign(ec, "ES256")), "signature"),
        (
            lambda ec: _segments(ec)[0] + "." + _b64(b'{"jti": "x"}') + "." + _segments(ec)[2],
            "signature",
        ),
        (lambda ec: _sign(ec, "ES256", claims=_claims(jti=_DROP)), "jti"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(jti="")), "jti"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(jti=12345)), "jti"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(jti="j" * 257)), "jti"),
        (lambda ec: _sign(ec, "ES256", raw_claims=_raw_claims(jti='"\\ud800"')), "Unicode"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(htm=_DROP)), "htm"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(htm="POST")), "htm"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(htm="get")), "htm"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(htm=["GET"])), "htm"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(htu=_DROP)), "htu"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(htu={"url": URL})), "htu"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(iat=_DROP)), "iat"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(iat="now")), "iat"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(iat=True)), "iat"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(iat=None)), "iat"),
        (lambda ec: _sign(ec, "ES256", raw_claims=_raw_claims(iat="1e999")), "iat"),
        (lambda ec: _sign(ec, "ES256", raw_claims=_raw_claims(iat="-1e999")), "iat"),
        (lambda ec: _sign(ec, "ES256", raw_claims=_raw_claims(iat="1" + "0" * 400)), "iat"),
        (lambda ec: _sign(ec, "ES256", raw_claims=_raw_claims(iat="-" + "9" * 400)), "iat"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(ath=_DROP)), "ath"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(ath=access_token_hash("other"))), "ath"),
        (lambda ec: _sign(ec, "ES256", claims=_claims(ath=5)), "ath"),
        (lambda ec: _sign(ec, "ES256", raw_claims=_raw_claims(ath='"\\udcff"')), "Unicode"),
    ],
)
def test_every_malformed_or_wrong_proof_is_a_proof_error(
    ec: ECKey, build: Callable[[ECKey], object], reason: str
) -> None:
    error = _refused(build(ec), reason)
    assert not error.use_nonce


def _raw_claims(**raw: str) -> bytes:
    """The claims as JSON text, some members written raw (escapes, numbers out of range)."""
    claims = _claims(**dict.fromkeys(raw, _DROP))
    members = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in claims.items()]
    members += [f"{json.dumps(name)}: {text}" for name, text in raw.items()]
    return ("{" + ", ".join(members) + "}").encode()


def _tampered(token: str) -> str:
    """One signature byte changed, in the middle so base64url stays canonical."""
    head, _, signature = token.rpartition(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{head}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def test_hmac_with_a_symmetric_jwk_is_refused() -> None:
    oct_key = OctKey.generate_key(256, private=True)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": oct_key.as_dict(private=True)}
    first = _b64(json.dumps(header).encode())
    second = _b64(json.dumps(_claims()).encode())
    signature = (
        jws_registry("HS256").algorithms["HS256"].sign(f"{first}.{second}".encode(), oct_key)
    )
    _refused(f"{first}.{second}.{_b64(signature)}", "algorithm")


def test_a_small_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # making it, not reading it, warns
        small = RSAKey.import_key(rsa_keys.generate_private_key(65537, 1024))
        token = _sign(small, "RS256")
    _refused(token, "2048")


@pytest.mark.parametrize("n", [None, 65537, "", "!!", "A", "AQAB", ["AQAB"]])
def test_an_rsa_jwk_without_a_usable_modulus_is_refused(rsa: RSAKey, n: Any) -> None:
    jwk = {**_public(rsa), "n": n}
    if n is None:
        del jwk["n"]
    _refused(_sign(rsa, "RS256", header={"jwk": jwk}), "2048")


def test_an_rsa_jwk_with_a_bad_exponent_is_refused(rsa: RSAKey) -> None:
    for e in ("", "!!", 3, "AA"):
        _refused(_sign(rsa, "RS256", header={"jwk": {**_public(rsa), "e": e}}), "key")


def test_an_rsa_jwk_for_an_ec_alg_and_an_okp_of_the_wrong_curve(rsa: RSAKey) -> None:
    _refused(_sign(rsa, "RS256", header={"alg": "ES256"}), "key for ES256")
    ed448 = OKPKey.generate_key("Ed448", private=True)
    _refused(_sign(ed448, "EdDSA", header={"alg": "Ed25519"}), "key for Ed25519")


def test_algorithms_narrow_the_allow_list(ec: ECKey) -> None:
    _refused(_sign(ec, "ES256"), "algorithm", algorithms=["EdDSA"])
    _refused(_sign(ec, "ES256"), "algorithm", algorithms=["ES256K", "HS256"])
    assert _read(_sign(ec, "ES256"), algorithms=["ES256", "unknown"])


def test_a_key_other_than_the_bound_one_is_refused(ec: ECKey) -> None:
    _refused(_sign(ec, "ES256"), "bound to", jkt=ECKey.generate_key("P-256").thumbprint())
    _refused(_sign(ec, "ES256"), "bound to", jkt="\ud800")


def test_a_non_ascii_access_token_matches_no_proof(ec: ECKey) -> None:
    _refused(_sign(ec, "ES256"), "ath", access_token="tökén")


# -- fuzzing --------------------------------------------------------------------------------


_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], {}, ["a"], {"a": 1}, "\u0000"]


@pytest.mark.parametrize(
    ("part", "name"),
    [("header", n) for n in ("typ", "alg", "jwk", "crit", "b64")]
    + [("claims", n) for n in ("jti", "htm", "htu", "iat", "ath", "nonce")],
)
def test_any_json_value_in_any_member_gives_a_proof_error_or_passes(
    ec: ECKey, part: str, name: str
) -> None:
    for value in _VALUES:
        if part == "header":
            token = _sign(ec, "ES256", header={name: value})
        else:
            token = _sign(ec, "ES256", claims=_claims(**{name: value}))
        try:
            _read(token, nonce_is_valid=lambda n: n == "x")
        except ProofError as exc:
            assert exc.reason


def test_random_damage_gives_a_proof_error_and_nothing_else(ec: ECKey, rsa: RSAKey) -> None:
    rng = random.Random(9449)
    originals = [
        _sign(ec, "ES256"),
        _sign(rsa, "PS256"),
        _sign(OKPKey.generate_key("Ed25519", private=True), "EdDSA"),
    ]
    alphabet = 'AZaz09-_.=+/ "{}é\x00'
    refused = 0
    for _ in range(1500):
        token = list(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            kind = rng.randrange(4)
            at = rng.randrange(len(token))
            if kind == 0:
                token[at] = rng.choice(alphabet)
            elif kind == 1:
                del token[at]
            elif kind == 2:
                token.insert(at, rng.choice(alphabet))
            else:
                token = token[: rng.randrange(len(token) + 1)] or ["x"]
        damaged = "".join(token)
        try:
            _read(damaged)
        except ProofError:
            refused += 1
        else:
            # Only damage that changes nothing (blanks around it, spare base64 bits) passes.
            assert damaged.strip() in originals or damaged[:-1] in {o[:-1] for o in originals}
    assert refused > 1400


def test_random_json_documents_give_a_proof_error_and_nothing_else(ec: ECKey) -> None:
    rng = random.Random(7638)

    def value(depth: int = 0) -> Any:
        kind = rng.randrange(7 if depth < 3 else 5)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind == 2:
            return rng.choice([0, -1, 2**70, 1.5, 1e308])
        if kind == 3:
            return "".join(
                rng.choice('ab\u00e9\u2603\U0001f600"\\') for _ in range(rng.randrange(6))
            )
        if kind == 4:
            return rng.choice(["ES256", "dpop+jwt", "GET", URL, "EC", "P-256"])
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return {rng.choice(["kty", "crv", "x", "y", "n", "e", "alg"]): value(depth + 1)}

    for _ in range(400):
        header = {k: value() for k in rng.sample(["typ", "alg", "jwk", "kid"], rng.randrange(5))}
        claims = {k: value() for k in rng.sample(list(_claims()), rng.randrange(6))}
        token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.AAAA"
        with pytest.raises(ProofError):
            _read(token)
