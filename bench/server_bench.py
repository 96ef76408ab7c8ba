"""``authkestra serve`` vs npm oidc-provider, side by side under wrk: tokens, introspection, JWKS.

Run: .venv/bin/python bench/server_bench.py [--duration 15] [--threads 2] [--connections 32]
     .venv/bin/python bench/server_bench.py --smoke   (a second each: does it work?)

Servers, one after the other on the same cores (wrk runs beside them):

- npm oidc-provider, one process (Node is one thread): the peer;
- ``authkestra serve --workers 1``;
- ``authkestra serve`` as a user starts it: one worker per core (the default);

each authkestra server the way it runs in production: SQLite, the access log on
(``--log-level info``, to a file) and the metrics counted (``--admin-port``).
Per server, wrk posts the same client_secret_basic token request (ES256 RFC 9068
JWTs, same scope and resource), then each server's own introspection (RFC 7662:
oidc-provider's needs opaque tokens, so its token is one; ours is a JWT), then
fetches the JWKS. Every answer is checked before it is counted (a JWT with ES256;
``active: true``; a key set), and wrk's non-2xx count is reported: an error page
cannot pass for speed. Requests per second, p50 and p99 latency, and the ratio to
oidc-provider; ``--json FILE`` keeps the numbers, ``--charts DIR`` draws them
(matplotlib, a benchmark-only dependency).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import machine  # noqa: E402
from tests.support.authkestra_server import AuthkestraServer  # noqa: E402
from tests.support.oidc_provider import OidcProvider, client, signing_jwks  # noqa: E402

RESOURCE = "https://api.bench.test/"
OPAQUE = "https://opaque.bench.test/"
CASES = ("token", "introspect", "jwks")


@contextmanager
def oidc_provider(secret: str) -> Iterator[dict[str, Any]]:
    """npm oidc-provider with a client that may get JWT and opaque tokens and introspect."""
    provider = OidcProvider(
        {
            "clients": [client("bench", secret, scope="read")],
            "scopes": ["read"],
            "resources": {
                RESOURCE: {"scope": "read", "format": "jwt", "alg": "ES256"},
                OPAQUE: {"scope": "read", "format": "opaque"},
            },
            "ttl": 3600,
            "jwks": signing_jwks(),
        }
    )
    try:
        metadata = httpx.get(f"{provider.issuer}/.well-known/openid-configuration").json()
        yield {
            "label": "npm oidc-provider 9.13.3 (1 process)",
            "token_url": metadata["token_endpoint"],
            "introspection_url": metadata["introspection_endpoint"],
            "jwks_url": metadata["jwks_uri"],
            "client": ("bench", secret),
            "introspect_resource": OPAQUE,
        }
    finally:
        provider.stop()


@contextmanager
def authkestra(workers: int | None) -> Iterator[dict[str, Any]]:
    """``authkestra serve`` (SQLite), access log and metrics on."""
    server = AuthkestraServer(workers=workers, log_level="info", admin=True)
    try:
        client_id, secret = server.create_client(
            "bench", "--scope", "read", "--audience", RESOURCE, "--can-introspect", "any"
        )
        count = "1 worker" if workers == 1 else f"default: {_cores()} workers"
        yield {
            "label": f"authkestra serve ({count})",
            "token_url": server.token_url,
            "introspection_url": f"{server.issuer}/introspect",
            "jwks_url": f"{server.issuer}/jwks.json",
            "client": (client_id, secret),
            "introspect_resource": RESOURCE,
        }
    finally:
        server.stop()


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _basic(credentials: tuple[str, str]) -> str:
    return base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


def _form(**fields: str) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())


def _token(target: dict[str, Any], resource: str) -> str:
    answer = httpx.post(
        target["token_url"],
        data={"grant_type": "client_credentials", "scope": "read", "resource": resource},
        auth=target["client"],
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def prepare(target: dict[str, Any], directory: Path) -> dict[str, tuple[str, Path]]:
    """Each case's URL and wrk script, once its answer is checked."""
    token = _token(target, RESOURCE)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt", header
    to_inspect = _token(target, target["introspect_resource"])
    active = httpx.post(
        target["introspection_url"], data={"token": to_inspect}, auth=target["client"]
    ).json()
    assert active.get("active") is True, active
    keys = httpx.get(target["jwks_url"]).json()
    assert keys["keys"], keys
    basic = _basic(target["client"])
    bodies = {
        "token": _form(grant_type="client_credentials", scope="read", resource=RESOURCE),
        "introspect": _form(token=to_inspect),
    }
    scripts = {}
    for case in CASES:
        script = directory / f"{case}.lua"
        if case == "jwks":
            script.write_text('wrk.method = "GET"\n')
        else:
            script.write_text(
                'wrk.method = "POST"\n'
                f'wrk.body = "{bodies[case]}"\n'
                'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
                f'wrk.headers["Authorization"] = "Basic {basic}"\n'
            )
        script.chmod(0o600)  # it holds a credential
        url = {"token": "token_url", "introspect": "introspection_url", "jwks": "jwks_url"}[case]
        scripts[case] = (target[url], script)
    return scripts


def run_wrk(url: str, script: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
         "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "none",
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)),
    }


def _ms(match: re.Match[str] | None) -> float | None:
    if match is None:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--charts", type=Path, help="draw PNG charts into this directory")
    parser.add_argument(
        "--servers",
        default="oidc-provider,1,auto",
        help="which, in order: oidc-provider, 1 (one worker), auto (the default) [all three]",
    )
    parser.add_argument("--smoke", action="store_true", help="a second per case")
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.connections = 1, 4
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make servers)")
    machine()
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s per case\n")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="authkestra-bench-") as tmp:
        makers = {
            "oidc-provider": lambda: oidc_provider("bench-secret-0123456789abcdef"),
            "1": lambda: authkestra(1),
            "auto": lambda: authkestra(None),
        }
        for make in (makers[name.strip()] for name in args.servers.split(",")):
            with make() as target:
                directory = Path(tmp) / str(len(results))
                directory.mkdir()
                scripts = prepare(target, directory)
                results[target["label"]] = {
                    case: run_wrk(url, script, args) for case, (url, script) in scripts.items()
                }
    peer = next(iter(results.values()))
    for case in CASES:
        print(f"\n### {case}\n")
        print(
            "| server | requests/s | vs oidc-provider | p50 ms | p99 ms | non-2xx | socket errors |"
        )
        print("|---|---|---|---|---|---|---|")
        for label, cases in results.items():
            r = cases[case]
            ratio = r["rps"] / peer[case]["rps"] if peer[case]["rps"] else 0.0
            print(
                f"| {label} | {r['rps']:,.0f} | {ratio:.2f}x | {r['p50_ms']} | {r['p99_ms']}"
                f" | {r['non2xx']} | {r['socket_errors']} |"
            )
    bad = [(label, case) for label, cases in results.items() for case, r in cases.items()
           if not r["rps"] or r["non2xx"]]  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.charts and not args.smoke:
        from bench._charts import server_charts

        for path in server_charts(results, args.charts):
            print(f"chart: {path}")
    if bad:
        sys.exit(f"failed or non-2xx answers: {bad}")


if __name__ == "__main__":
    main()
