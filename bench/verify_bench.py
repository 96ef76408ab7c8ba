"""Access-token verification throughput: authkestra's JWTVerifier vs PyJWT vs joserfc vs raw cryptography.

Run: .venv/bin/python bench/verify_bench.py [--seconds 2]

For ES256, EdDSA and RS256, one thread, verifications per second of a valid
RFC 9068 token:
- raw: cryptography's signature check alone on pre-decoded input (the limit);
- joserfc: ``jwt.decode`` with a ``KeySet``, then claims validation;
- PyJWT: ``PyJWKSet`` key lookup by kid, then ``jwt.decode`` with iss/aud checks;
- authkestra uncached: ``JWTVerifier(cache_tokens=False).verify_sync`` (all checks);
- authkestra cached: the same token verified again (the verified-token cache).
All verifiers get their keys from a JWKS served on loopback and warmed up first.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cryptography
import joserfc
import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

import authkestra
from authkestra.resource import JWTVerifier

ISSUER = "https://issuer.bench.test"
AUDIENCE = "https://api.bench.test/"


def make_key(alg: str) -> Any:
    params: Any = {"alg": alg, "use": "sig", "kid": f"k-{alg}"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", params, private=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", params, private=True)
    return RSAKey.generate_key(2048, params, private=True)


def make_token(alg: str, key: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "svc",
        "client_id": "svc",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        "jti": os.urandom(8).hex(),
        "scope": "read write",
    }
    return jose_jwt.encode(
        {"alg": alg, "kid": f"k-{alg}", "typ": "at+jwt"}, claims, key, algorithms=[alg]
    )


def serve_jwks(jwks: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/jwks.json"


def rate(func: Callable[[], object], seconds: float) -> float:
    """Best of three runs of about ``seconds``/3 each: calls per second."""
    func()  # warm up
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for _ in range(50):
                func()
            n += 50
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def raw_verifier(alg: str, key: Any, token: str) -> Callable[[], None]:
    head, payload, sig = token.split(".")
    msg = f"{head}.{payload}".encode()
    signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    public = key.public_key
    if alg == "ES256":
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        return lambda: public.verify(der, msg, ec.ECDSA(hashes.SHA256()))
    if alg == "EdDSA":
        return lambda: public.verify(signature, msg)
    return lambda: public.verify(signature, msg, padding.PKCS1v15(), hashes.SHA256())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with open("/proc/cpuinfo") as fh:
        model = next(
            (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?"
        )
    print(f"cpu: {model}")
    print(
        f"authkestra {authkestra.__version__}, PyJWT {pyjwt.__version__}, joserfc {joserfc.__version__}, cryptography {cryptography.__version__}"
    )
    print()
    header = f"{'alg':6} {'raw':>10} {'joserfc':>10} {'PyJWT':>10} {'ak uncached':>12} {'ak cached':>12} {'uncached/raw':>13}"
    print(header)
    print("-" * len(header))
    for alg in ("ES256", "EdDSA", "RS256"):
        key = make_key(alg)
        token = make_token(alg, key)
        jwks = {
            "keys": [key.as_dict(private=False) | {"kid": f"k-{alg}", "alg": alg, "use": "sig"}]
        }
        server, url = serve_jwks(jwks)
        try:
            keyset = KeySet.import_key_set(jwks)
            registry = JWTClaimsRegistry(
                iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": AUDIENCE}
            )

            def joserfc_verify() -> None:
                registry.validate(jose_jwt.decode(token, keyset, algorithms=[alg]).claims)

            pyjwk_set = pyjwt.PyJWKSet.from_dict(jwks)

            def pyjwt_verify() -> None:
                kid = pyjwt.get_unverified_header(token)["kid"]
                pyjwt.decode(
                    token, pyjwk_set[kid].key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER
                )

            uncached = JWTVerifier(
                issuer=ISSUER, audience=AUDIENCE, jwks_url=url, cache_tokens=False
            )
            cached = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=url)
            results = {
                "raw": rate(raw_verifier(alg, key, token), args.seconds),
                "joserfc": rate(joserfc_verify, args.seconds),
                "pyjwt": rate(pyjwt_verify, args.seconds),
                "uncached": rate(lambda: uncached.verify_sync(token), args.seconds),
                "cached": rate(lambda: cached.verify_sync(token), args.seconds),
            }
        finally:
            server.shutdown()
        print(
            f"{alg:6} {results['raw']:>10,.0f} {results['joserfc']:>10,.0f} {results['pyjwt']:>10,.0f}"
            f" {results['uncached']:>12,.0f} {results['cached']:>12,.0f} {results['uncached'] / results['raw']:>12.2f}x"
        )
    print("\n(verifications per second, one thread, best of 3)")


if __name__ == "__main__":
    main()
