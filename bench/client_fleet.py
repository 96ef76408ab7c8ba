#!/usr/bin/env python
"""Client benchmark, a fleet: 8 processes ask for a token every 10 ms over several lifetimes.

Token requests per token lifetime: authkestra alone, with a FileCache, with a
RedisCache on a real redis-server; the peers as they are, and httpx-auth with
its JsonTokenFileCache.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx_auth
from _common import (
    PEER_EARLY_SECONDS,
    ROOT,
    AuthkestraLib,
    AuthlibLib,
    HttpxAuthLib,
    Server,
    note,
    run,
    server,
    table,
)
from tests.support.redis_server import RedisServer

from authkestra.cache import FileCache, RedisCache, TokenCache

# -- case 3: a fleet of processes ---------------------------------------------------------------


FLEET_SETUPS = (
    ("authkestra", "default (MemoryCache, per process)"),
    ("authkestra", "FileCache (shared file)"),
    ("authkestra", "RedisCache (redis-server)"),
    ("Authlib", "none (per process)"),
    ("httpx-auth", "none (per process, default)"),
    ("httpx-auth", "JsonTokenFileCache (shared file)"),
)


def fleet_worker(spec: dict[str, Any]) -> None:
    """One process of the fleet: report the tokens it used."""
    lib, cache = spec["lib"], spec["cache"]
    getter: Callable[[], str]
    if lib == "authkestra":
        backend: TokenCache | None = None
        if cache.startswith("FileCache"):
            backend = FileCache(spec["path"])
        elif cache.startswith("RedisCache"):
            backend = RedisCache(spec["redis"], prefix=spec["prefix"])
        getter = AuthkestraLib(spec["token_url"], cache=backend).token
    elif lib == "Authlib":
        getter = AuthlibLib(spec["token_url"]).token
    else:
        if cache.startswith("JsonTokenFileCache"):
            httpx_auth.OAuth2.token_cache = httpx_auth.JsonTokenFileCache(spec["path"])
        getter = HttpxAuthLib(spec["token_url"], clear=False).token
    # httpx imports httpcore (and with it trio, when installed) on its first
    # connection: do that now, so no library pays it inside the measured run.
    importlib.import_module("httpcore")
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + spec["duration"]
    seen: list[str] = []
    calls = errors = 0
    while time.time() < end:
        try:
            token = getter()
        except Exception as exc:  # report, keep going
            errors += 1
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            digest = hashlib.sha256(token.encode()).hexdigest()[:16]
            if digest not in seen:
                seen.append(digest)
        calls += 1
        time.sleep(spec["interval"])
    print(json.dumps({"calls": calls, "errors": errors, "tokens": seen}), flush=True)


def case_fleet(n_processes: int = 8, ttl: int = 3, duration: float = 9.0) -> None:
    """A fleet: processes asking every 10 ms, token requests per token lifetime."""
    note(
        f"## Case 3 -- {n_processes} processes, each asking every 10 ms for {duration:.0f} s "
        f"({ttl} s tokens)"
    )
    rows: list[list[Any]] = []
    redis_srv = None
    try:
        redis_srv = RedisServer() if shutil.which("redis-server") else None
    except RuntimeError:
        redis_srv = None
    tmp = tempfile.TemporaryDirectory(prefix="authkestra-bench-")
    try:
        with server(ttl=ttl) as srv:
            for i, (lib, cache) in enumerate(FLEET_SETUPS):
                if cache.startswith("RedisCache") and redis_srv is None:
                    rows.append([lib, cache, "skipped: no redis-server", "", "", "", "", ""])
                    continue
                spec = {
                    "lib": lib,
                    "cache": cache,
                    "token_url": srv.token_url,
                    "path": str(Path(tmp.name) / f"run{i}" / "tokens.json"),
                    "redis": redis_srv.url if redis_srv else "",
                    "prefix": f"bench{i}:",
                    "duration": duration,
                    "interval": 0.01,
                }
                Path(spec["path"]).parent.mkdir(mode=0o700)
                results = _run_fleet(spec, n_processes, srv)
                requests = srv.count()
                per_process = [len(r["tokens"]) for r in results]
                fleet_tokens = len({t for r in results for t in r["tokens"]})
                lifetimes = statistics.mean(per_process)
                errors = sum(r["errors"] for r in results)
                logged = sum(r["logged"] for r in results)
                rows.append(
                    [
                        lib,
                        cache,
                        requests,
                        f"{requests / (duration / ttl):.1f}",
                        fleet_tokens,
                        f"{lifetimes:.1f}",
                        f"{requests / lifetimes:.1f}",
                        f"{errors} / {logged}",
                    ]
                )
    finally:
        tmp.cleanup()
        if redis_srv is not None:
            redis_srv.stop()
    table(
        f"{n_processes} processes: token requests per token lifetime",
        [
            "library",
            "shared cache",
            "token requests",
            f"per {ttl} s (one TTL)",
            "distinct tokens",
            "tokens used per process",
            "requests per token lifetime",
            "caller errors / cache errors logged",
        ],
        rows,
    )
    note(
        "'requests per token lifetime' = token requests / tokens each process went through\n"
        "(one per renewal it saw): 1 means the fleet fetched each token once, "
        f"{n_processes} that every\nprocess fetched its own. 'per TTL' = token requests / "
        f"({duration:.0f} s / {ttl} s). authkestra renews at 75-85% of the\n"
        f"lifetime; the peers {PEER_EARLY_SECONDS} s before expiry (Authlib's expiry is "
        "rounded down to a whole second)."
    )


def _run_fleet(spec: dict[str, Any], n: int, srv: Server) -> list[dict[str, Any]]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "_fleet-worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                err = p.stderr.read() if p.stderr else ""
                raise RuntimeError(f"fleet worker failed: {line} {err[-2000:]}")
        srv.reset()
        start_at = time.time() + 0.3
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"{start_at}\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=spec["duration"] + 60)
            if p.returncode != 0:
                raise RuntimeError(f"fleet worker exited {p.returncode}: {err[-2000:]}")
            result = json.loads(out.strip().splitlines()[-1])
            # Cache trouble the libraries log (httpx-auth: "Cannot load tokens.",
            # authkestra: "authkestra: token cache ... failed").
            result["logged"] = sum(
                1
                for line in err.splitlines()
                if line.startswith(("Cannot load tokens", "Cannot save tokens", "authkestra:"))
            )
            results.append(result)
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def main(argv: list[str]) -> int:
    if argv[:1] == ["_fleet-worker"]:
        fleet_worker(json.loads(argv[1]))
        return 0
    return run(case_fleet, {"n_processes": 2, "ttl": 2, "duration": 2.5}, argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
