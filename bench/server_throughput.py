"""Token endpoint throughput: ``authkestra serve`` vs npm oidc-provider, side by side, under wrk.

Run: .venv/bin/python bench/server_throughput.py [--duration 20] [--threads 2] [--connections 32]
     .venv/bin/python bench/server_throughput.py --smoke   (a second each: does it work?)

Both servers issue ES256-signed RFC 9068 JWT access tokens to a
client_secret_basic client for the same scope and resource; wrk (Debian's
package) posts the same token request to each in turn, on the same 2 cores.
Each server's answer is checked first (a JWT with alg ES256), and wrk's
non-2xx count is reported, so a fast error page cannot pass for throughput.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.authkestra_server import AuthkestraServer  # noqa: E402
from tests.support.oidc_provider import OidcProvider, client, signing_jwks  # noqa: E402

RESOURCE = "https://api.bench.test/"
BODY = f"grant_type=client_credentials&scope=read&resource={RESOURCE.replace(':', '%3A').replace('/', '%2F')}"


def wrk_script(directory: Path, client_id: str, secret: str) -> Path:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    script = directory / "token.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{BODY}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["Authorization"] = "Basic {basic}"\n'
    )
    script.chmod(0o600)  # it holds a credential
    return script


def check_answer(token_url: str, client_id: str, secret: str) -> str:
    answer = httpx.post(
        token_url,
        content=BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(client_id, secret),
    )
    answer.raise_for_status()
    token = answer.json()["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES256", header
    return str(header.get("typ"))


def run_wrk(url: str, script: Path, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return {
        "rps": rps,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": errors.group(0) if errors else "none",  # type: ignore[dict-item]
        "p99": p99.group(1) if p99 else "?",  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--smoke", action="store_true", help="one second per server: does the benchmark work?"
    )
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.connections = 1, 4
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with open("/proc/cpuinfo") as fh:
        model = next(
            (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?"
        )
    print(
        f"machine: {model}, {os.cpu_count()} cores, Python {platform.python_version()}, node {subprocess.run(['node', '--version'], check=False, capture_output=True, text=True).stdout.strip()}"
    )
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, POST /token, client_secret_basic, ES256 JWT access tokens\n"
    )
    results: list[tuple[str, dict[str, float], str]] = []
    with tempfile.TemporaryDirectory(prefix="authkestra-bench-") as tmp:
        directory = Path(tmp)
        secret = "bench-secret-0123456789abcdef"
        provider = OidcProvider(
            {
                "clients": [client("bench", secret, scope="read")],
                "scopes": ["read"],
                "resources": {RESOURCE: {"scope": "read", "format": "jwt", "alg": "ES256"}},
                "ttl": 3600,
                "jwks": signing_jwks(),
            }
        )
        try:
            typ = check_answer(provider.token_url, "bench", secret)
            results.append(
                (
                    "npm oidc-provider 9.13.3 (1 process)",
                    run_wrk(provider.token_url, wrk_script(directory, "bench", secret), args),
                    typ,
                )
            )
        finally:
            provider.stop()
        for workers in (1, 2):
            server = AuthkestraServer(workers=workers)
            try:
                client_id, client_secret = server.create_client(
                    "bench", "--scope", "read", "--audience", RESOURCE
                )
                typ = check_answer(server.token_url, client_id, client_secret)
                label = f"authkestra serve, SQLite, {workers} worker{'s' if workers > 1 else ''}"
                script = wrk_script(directory, client_id, client_secret)
                results.append((label, run_wrk(server.token_url, script, args), typ))
            finally:
                server.stop()
    for label, r, _typ in results:
        if not r["rps"] or r["non2xx"]:
            sys.exit(f"{label}: {r['rps']:.0f} tokens/s, {r['non2xx']:.0f} non-2xx answers")
    base = results[0][1]["rps"]
    print("| server | tokens/s | vs oidc-provider | non-2xx | p99 latency | socket errors | typ |")
    print("|---|---|---|---|---|---|---|")
    for label, r, typ in results:
        print(
            f"| {label} | {r['rps']:,.0f} | {r['rps'] / base:.2f}x | {r['non2xx']:.0f} | {r['p99']} | {r['socket_errors']} | {typ} |"
        )


if __name__ == "__main__":
    main()
