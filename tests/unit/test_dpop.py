"""DPoP proofs (RFC 9449): header, claims, ath, htu normalisation, nonce memory."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authkestra import ConfigError
from authkestra._jose.signing import jws_registry
from authkestra._protocol.dpop import (
    DPoPState,
    NonceStore,
    access_token_hash,
    dpop_key,
    generate_dpop_key,
    htu,
    proof,
)
from authkestra.flow.private_key import load_private_key

NOW = 1_700_000_000


def _verify(token: str, key: Any, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify with the public key the proof itself carries; return header and claims."""
    header = json.loads(base64.urlsafe_b64decode(token.partition(".")[0] + "=="))
    public = type(key).import_key(header["jwk"])
    obj = jws.deserialize_compact(token, public, registry=jws_registry(alg))
    return dict(obj.protected), json.loads(obj.payload)


def test_es256_proof_header_and_claims() -> None:
    key = generate_dpop_key()
    token = proof(key, "post", "https://as.example/token?x=1#frag", now=NOW)
    header, claims = _verify(token, key.key, "ES256")
    assert header["typ"] == "dpop+jwt"
    assert header["alg"] == "ES256"
    assert header["jwk"] == dict(key.public_jwk)
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}  # public members only
    assert "d" not in header["jwk"]
    assert claims["htm"] == "POST"
    assert claims["htu"] == "https://as.example/token"
    assert claims["iat"] == NOW
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert "nonce" not in claims and "ath" not in claims


def test_eddsa_proof_with_nonce_and_ath() -> None:
    okp = OKPKey.generate_key("Ed25519", {"kid": "ed"}, private=True)
    key = dpop_key(load_private_key(okp))
    assert key.alg == "EdDSA"
    token = proof(
        key, "GET", "https://api.example/v1/things", now=NOW, nonce="n-1", access_token="tok"
    )
    header, claims = _verify(token, okp, "EdDSA")
    assert header["alg"] == "EdDSA"
    assert set(header["jwk"]) == {"kty", "crv", "x"}  # no kid: only the key itself
    assert claims["nonce"] == "n-1"
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"tok").digest()).rstrip(b"=").decode()
    assert claims["ath"] == expected == access_token_hash("tok")


def test_every_proof_has_a_fresh_jti() -> None:
    key = generate_dpop_key()
    jtis = {
        _verify(proof(key, "POST", "https://as.example/token", now=NOW), key.key, "ES256")[1]["jti"]
        for _ in range(20)
    }
    assert len(jtis) == 20


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example/a/b?q=1", "https://api.example/a/b"),
        ("https://api.example/a#x", "https://api.example/a"),
        ("http://127.0.0.1:8080/token?", "http://127.0.0.1:8080/token"),
        ("https://api.example", "https://api.example"),
    ],
)
def test_htu_drops_query_and_fragment(url: str, expected: str) -> None:
    assert htu(url) == expected


def test_thumbprint_is_rfc7638() -> None:
    ec = ECKey.generate_key("P-256", private=True)
    key = dpop_key(load_private_key(ec))
    assert key.thumbprint == ec.thumbprint()
    assert "jkt" in repr(key) and str(ec.as_dict(private=True)["d"]) not in repr(key)


@pytest.mark.parametrize(
    "other",
    [
        RSAKey.generate_key(2048, private=True),
        ECKey.generate_key("P-384", private=True),
    ],
)
def test_only_es256_and_eddsa_keys(other: Any) -> None:
    with pytest.raises(ConfigError, match="DPoP key"):
        dpop_key(load_private_key(other))


def test_nonce_store_is_per_origin_and_keeps_the_latest() -> None:
    store = NonceStore()
    assert store.get("https://as.example/token") is None
    assert store.remember("https://as.example/token", "one")
    assert store.remember("https://AS.example/other", "two")
    assert store.get("https://as.example/token?x") == "two"
    assert store.get("https://as.example:8443/token") is None
    assert store.get("http://as.example/token") is None
    assert not store.remember("https://as.example/", None)
    assert not store.remember("https://as.example/", 'bad"nonce')
    assert not store.remember("https://as.example/", "x" * 2000)
    assert store.get("https://as.example/") == "two"


def test_state_puts_the_remembered_nonce_in_the_proof() -> None:
    state = DPoPState(generate_dpop_key())
    url = "https://as.example/token"
    first = _verify(state.proof("POST", url, now=NOW), state.key.key, "ES256")[1]
    assert "nonce" not in first
    assert state.observe(url, {"dpop-nonce": "abc"})
    second = _verify(state.proof("POST", url, now=NOW), state.key.key, "ES256")[1]
    assert second["nonce"] == "abc"
    assert not state.observe(url, {})
