"""The token signing fast path (``TokenSigner``) against joserfc and npm jose.

Byte for byte the same header and payload as joserfc (and, for the deterministic
EdDSA and RS256, the same token); every token verified by joserfc, and by npm jose
in a real node process, for several claim sets.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt

from authkestra._jose.keys import generate_key
from authkestra._jose.signing import TokenSigner, jws_registry, sign_jwt

PEERS = Path(__file__).resolve().parents[1] / "interop" / "peers"
ALGS = ("ES256", "EdDSA", "RS256")


def claim_sets() -> list[dict[str, Any]]:
    return [
        {"iss": "https://as.example", "sub": "svc", "exp": 2_000_000_000, "jti": "a"},
        {
            "iss": "https://as.example", "aud": ["https://a/", "https://b/"],
            "scope": "read write", "client_id": "svc~1", "cnf": {"jkt": "x" * 43},
            "iat": 1_700_000_000, "exp": 2_000_000_000, "jti": secrets.token_urlsafe(16),
        },
        {"iss": "https://as.example", "note": "non-ASCII: é ✓ \u2028", "exp": 2_000_000_000},
    ]  # fmt: skip


@pytest.fixture(scope="module", params=ALGS)
def signer(request: pytest.FixtureRequest) -> TokenSigner:
    alg = request.param
    header = {"alg": alg, "kid": f"k-{alg}", "typ": "at+jwt"}
    return TokenSigner(header, generate_key(alg, {"kid": f"k-{alg}"}))


def test_the_fast_path_is_taken(signer: TokenSigner) -> None:
    assert signer._signature is not None


def test_header_and_payload_are_joserfcs_byte_for_byte(signer: TokenSigner) -> None:
    for claims in claim_sets():
        ours = signer.sign(claims)
        theirs = sign_jwt(signer.header, claims, signer.key)
        assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
        if signer.header["alg"] != "ES256":  # deterministic signatures: the same token
            assert ours == theirs


def test_every_token_verifies_with_joserfc(signer: TokenSigner) -> None:
    alg = signer.header["alg"]
    for claims in claim_sets():
        decoded = jwt.decode(signer.sign(claims), signer.key, registry=jws_registry(alg))
        assert decoded.claims == claims
        assert decoded.header == signer.header


def test_a_changed_token_does_not_verify(signer: TokenSigner) -> None:
    token = signer.sign(claim_sets()[0])
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload[:-2]}AA.{signature}"
    with pytest.raises(Exception):
        jwt.decode(tampered, signer.key, registry=jws_registry(signer.header["alg"]))


def test_every_token_verifies_with_npm_jose(signer: TokenSigner) -> None:
    if not (PEERS / "node_modules" / "jose").is_dir():
        pytest.fail(f"npm packages missing in {PEERS}: run 'make test' (it runs npm ci there)")
    alg = signer.header["alg"]
    claims = claim_sets()
    tokens = [signer.sign(c) for c in claims]
    public = {**signer.key.as_dict(private=False), "alg": alg}
    completed = subprocess.run(
        ["node", str(PEERS / "jose_verify_check.mjs")],
        input=json.dumps({"jwk": public, "alg": alg, "tokens": tokens}),
        capture_output=True, text=True, cwd=PEERS, timeout=60, check=False,
    )  # fmt: skip
    answer = json.loads(completed.stdout)
    assert completed.returncode == 0, answer
    assert [v["payload"] for v in answer["verified"]] == claims
    assert all(v["header"] == signer.header for v in answer["verified"])


def test_a_key_without_a_fast_path_signs_through_joserfc() -> None:
    key = generate_key("ES384", {"kid": "k"})
    signer = TokenSigner({"alg": "ES384", "kid": "k", "typ": "at+jwt"}, key)
    assert signer._signature is None
    token = signer.sign({"exp": 2_000_000_000})
    assert jwt.decode(token, key, registry=jws_registry("ES384")).claims["exp"] == 2_000_000_000
