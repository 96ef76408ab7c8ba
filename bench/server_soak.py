"""Soak: ``authkestra serve`` under a steady token request rate for a long time.

Run: .venv/bin/python bench/server_soak.py [--minutes 10] [--rate 500]
     .venv/bin/python bench/server_soak.py --smoke   (3 seconds: does it work?)

wrk paces its connections (a Lua ``delay``) to about ``--rate`` requests per
second against one server process; every 30 s the server's resident memory
is sampled from /proc. At the end: requests, errors (non-2xx, socket errors),
and the memory samples, whose growth after warm-up should be flat.
"""

from __future__ import annotations

import argparse
import base64
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.authkestra_server import AuthkestraServer  # noqa: E402

RESOURCE = "https://api.soak.test/"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="3 seconds: does the soak work?")
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.rate = 0.05, 50
    server = AuthkestraServer()
    with tempfile.TemporaryDirectory(prefix="authkestra-soak-") as tmp:
        client_id, client_secret = server.create_client(
            "soak", "--scope", "read", "--audience", RESOURCE
        )
        issuer = server.issuer
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        # Each connection waits `pause` ms between requests: connections * 1000 / pause per second.
        pause = max(1, int(args.connections * 1000 / args.rate))
        script = Path(tmp) / "soak.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.body = "grant_type=client_credentials&scope=read"\n'
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
            f'wrk.headers["Authorization"] = "Basic {basic}"\n'
            f"function delay() return {pause} end\n"
        )
        script.chmod(0o600)
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample() -> None:
            start = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - start, rss_kib(server.process.pid)))
                stop.wait(30)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        seconds = int(args.minutes * 60)
        try:
            out = subprocess.run(
                [
                    "wrk",
                    "-t1",
                    f"-c{args.connections}",
                    f"-d{seconds}s",
                    "-s",
                    str(script),
                    f"{issuer}/token",
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=seconds + 120,
            ).stdout
        finally:
            stop.set()
            sampler.join()
            samples.append((seconds, rss_kib(server.process.pid)))
            server.process.terminate()
            server.process.wait(timeout=30)
            logged = server.log_path.read_text(errors="replace")
            server.stop()
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    print(
        f"duration {args.minutes} min, target {args.rate}/s, achieved {requests / seconds:,.0f}/s, {requests:,} requests"
    )
    print(
        f"non-2xx: {non2xx.group(1) if non2xx else 0}; socket errors: {socket_errors.group(0) if socket_errors else 'none'}"
    )
    print(f"server log lines: {len(logged.splitlines())}")
    if not requests or non2xx:
        sys.exit("the soak made no request, or got error answers")
    print(
        "RSS over time (MiB): " + ", ".join(f"{t / 60:.1f}m={kib / 1024:.1f}" for t, kib in samples)
    )
    warm = [kib for t, kib in samples if t >= 60]
    if len(warm) >= 2:
        print(
            f"after the first minute: min {min(warm) / 1024:.1f} MiB, max {max(warm) / 1024:.1f} MiB, growth {(warm[-1] - warm[0]) / 1024:+.1f} MiB"
        )


if __name__ == "__main__":
    main()
