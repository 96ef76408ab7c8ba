"""Access-token verification throughput: authkestra's JWTVerifier vs PyJWT vs joserfc vs raw cryptography.

Run: .venv/bin/python bench/verifier_throughput.py [--seconds 6] [--breakdown] [--smoke]

For ES256, EdDSA and RS256, one thread, verifications per second of a valid
RFC 9068 token:
- raw: cryptography's signature check alone on pre-decoded input (the limit);
- jose sig: joserfc's algorithm ``verify`` alone on the same pre-decoded input: the
  signature step authkestra uses (it converts the JWS signature for cryptography);
- joserfc: ``jwt.decode`` with a ``KeySet``, then claims validation;
- PyJWT: ``PyJWKSet`` key lookup by kid, then ``jwt.decode`` with iss/aud checks;
- authkestra uncached: ``JWTVerifier(cache_tokens=False).verify_sync`` (all checks);
- authkestra cached: the same token verified again (the verified-token cache);
- with ``--breakdown``, floor: the least any verifier
  written in Python does per token (split it, decode the payload's JSON and the
  signature by the cheapest means of the standard library, then cryptography's
  check) with no header read, no key lookup and no claim checked: a bound no Python
  verifier can beat; and jose floor: the same with joserfc's signature step instead
  of cryptography's, the bound for a verifier that leaves JOSE to joserfc (all
  printed as fractions of raw).
All verifiers get their keys from a JWKS served on loopback and warmed up first.
``--smoke`` runs every case for a few milliseconds: it proves the benchmark works
(``make check`` runs it), and measures nothing.

The cases are measured in turns: each round times every case for a quarter of a
second, one after the other, and each case keeps its best turn (``--seconds`` of
turns per case). On a shared machine the load comes and goes; in short turns,
it hits every case alike, instead of whichever case happened to run while it
lasted.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cryptography
import joserfc
import jwt as pyjwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from joserfc.jws import JWSRegistry
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


#: Length of one turn, in seconds: short turns, many of them, so that each case gets its
#: share of the quiet moments of a shared machine.
TURN = 0.25


def rate_once(func: Callable[[], object], seconds: float) -> float:
    """Calls per second over about ``seconds``."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            func()
        n += 50
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def rates(cases: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Calls per second of each case: its best turn, over ``seconds`` of turns per case."""
    for func in cases.values():
        func()  # warm up
    best = dict.fromkeys(cases, 0.0)
    for _ in range(max(3, round(seconds / TURN))):
        for name, func in cases.items():
            best[name] = max(best[name], rate_once(func, TURN))
    return best


def decoded(token: str) -> tuple[bytes, bytes]:
    """The signing input and the signature of ``token``, decoded once."""
    head, payload, sig = token.split(".")
    return f"{head}.{payload}".encode(), base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))


def signature_check(alg: str, key: Any) -> Callable[[bytes, bytes], None]:
    """cryptography's check of a JWS ``signature`` (as decoded from the token) over ``msg``."""
    public = key.public_key
    if alg == "ES256":
        return lambda signature, msg: public.verify(
            encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            ),
            msg,
            ec.ECDSA(hashes.SHA256()),
        )
    if alg == "EdDSA":
        return public.verify  # type: ignore[no-any-return]
    return lambda signature, msg: public.verify(signature, msg, padding.PKCS1v15(), hashes.SHA256())


def raw_verifier(alg: str, key: Any, token: str) -> Callable[[], None]:
    msg, signature = decoded(token)
    public = key.public_key
    if alg == "ES256":
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        return lambda: public.verify(der, msg, ec.ECDSA(hashes.SHA256()))
    if alg == "EdDSA":
        return lambda: public.verify(signature, msg)
    return lambda: public.verify(signature, msg, padding.PKCS1v15(), hashes.SHA256())


def python_floor(token: str, check: Callable[[bytes, bytes], object]) -> Callable[[], None]:
    """The least a verifier written in Python does per token: split it, decode the JSON
    payload and the signature, ``check(signature, signing_input)``, each step by the
    cheapest means the standard library has (one alphabet translation, binascii
    without strict checks, the JSON scanner called directly). Not a verifier: no
    header read, no key lookup, no claim checked, the input trusted to be
    well-formed. A bound on what one can reach."""
    to_standard = bytes.maketrans(b"-_", b"+/")
    padding = (b"", b"===", b"==", b"=")
    scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

    def run() -> None:
        raw = token.encode("ascii")
        head, payload, signature = raw.translate(to_standard).split(b".")
        scan(binascii.a2b_base64(payload + padding[len(payload) & 3]).decode(), 0)
        check(
            binascii.a2b_base64(signature + padding[len(signature) & 3]),
            raw[: len(head) + 1 + len(payload)],
        )

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the floors: what a Python verifier cannot do with less",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a run of milliseconds: does the benchmark work?"
    )
    parser.add_argument("--charts", type=Path, help="draw the results as a PNG in this directory")
    args = parser.parse_args()
    if args.smoke:
        global TURN  # noqa: PLW0603 - a smoke run's one setting
        TURN = 0.005
        args.seconds, args.breakdown = 0.0, True
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
    header = (
        f"{'alg':6} {'raw':>10} {'jose sig':>10} {'joserfc':>10} {'PyJWT':>10}"
        f" {'ak uncached':>12} {'ak cached':>12} {'uncached/raw':>13}"
    )
    print(header)
    print("-" * len(header))
    breakdown: dict[str, dict[str, float]] = {}
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
            jose_alg = JWSRegistry.algorithms[alg]
            msg, signature = decoded(token)
            public = type(key).import_key(jwks["keys"][0])

            def jose_sig() -> None:
                assert jose_alg.verify(msg, signature, public)

            def pyjwt_verify() -> None:
                kid = pyjwt.get_unverified_header(token)["kid"]
                pyjwt.decode(
                    token, pyjwk_set[kid].key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER
                )

            uncached = JWTVerifier(
                issuer=ISSUER, audience=AUDIENCE, jwks_url=url, cache_tokens=False
            )
            cached = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=url)
            cases: dict[str, Callable[[], object]] = {
                "raw": raw_verifier(alg, key, token),
                "jose_sig": jose_sig,
                "joserfc": joserfc_verify,
                "pyjwt": pyjwt_verify,
                "uncached": lambda: uncached.verify_sync(token),
                "cached": lambda: cached.verify_sync(token),
            }
            if args.breakdown:
                cases["floor"] = python_floor(token, signature_check(alg, key))

                def jose_check(signature: bytes, msg: bytes) -> None:
                    assert jose_alg.verify(msg, signature, public)

                cases["jose_floor"] = python_floor(token, jose_check)
            results = rates(cases, args.seconds)
            breakdown[alg] = results
        finally:
            server.shutdown()
        print(
            f"{alg:6} {results['raw']:>10,.0f} {results['jose_sig']:>10,.0f}"
            f" {results['joserfc']:>10,.0f} {results['pyjwt']:>10,.0f}"
            f" {results['uncached']:>12,.0f} {results['cached']:>12,.0f} {results['uncached'] / results['raw']:>12.2f}x"
        )
    turns = max(3, round(args.seconds / TURN))
    print(f"\n(verifications per second, one thread, best of {turns} turns of {TURN} s)")
    if args.charts and not args.smoke:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from bench._charts import verifier_chart

        print(f"chart: {verifier_chart(breakdown, args.charts)}")
    if args.breakdown:
        print("\nauthkestra's share, as a fraction of raw (verifications per second / raw's):")
        print(f"{'alg':6} {'jose sig':>10} {'uncached':>10} {'floor':>10} {'jose floor':>11}")
        for alg, results in breakdown.items():
            print(
                f"{alg:6} {results['jose_sig'] / results['raw']:>10.2f}"
                f" {results['uncached'] / results['raw']:>10.2f}"
                f" {results['floor'] / results['raw']:>10.2f}"
                f" {results['jose_floor'] / results['raw']:>11.2f}"
            )


if __name__ == "__main__":
    main()
