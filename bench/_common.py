"""What the client benchmarks share: the peers, the three libraries as their users set them
up, timing, tables, and the command line of every case.

Each ``bench/client_*.py`` is one case; run it with ``.venv/bin/python bench/client_<case>.py``
(``--smoke``: a seconds-long run that only proves the case still works, as ``make check``
does). ``bench/run_client.sh`` runs them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.support: the peers' launchers

import httpx  # noqa: E402
import httpx_auth  # noqa: E402
from authlib.deprecate import AuthlibDeprecationWarning  # noqa: E402

# Authlib warns on import that it would rather use the httpx2 package (its
# deprecate module turns its warnings on when imported: this filter comes after).
warnings.filterwarnings("ignore", r".*httpx module is deprecated", AuthlibDeprecationWarning)
from authlib.integrations.base_client import InvalidTokenError, MissingTokenError  # noqa: E402
from authlib.integrations.httpx_client import (  # noqa: E402
    AsyncOAuth2Client,
    OAuth2Client,
)
from tests.support.oidc_provider import PEERS, OidcProvider, client, signing_jwks  # noqa: E402

from authkestra import ClientCredentialsFlow  # noqa: E402
from authkestra.cache import TokenCache  # noqa: E402

CLIENT_ID = "bench-svc"
SECRET = "bench-secret-0123456789"
SCOPES = ["read"]
SCOPE = "read"
API_URL = "http://api.bench.test/resource"
API_ORIGIN = "http://api.bench.test"
#: Early renewal for the peers on short-lived test tokens: both default to far
#: more than a 3-4 s token lives (Authlib leeway=60 s, httpx-auth early_expiry=30 s,
#: and httpx-auth reads early_expiry=0 as 30), which would refetch on every call.
PEER_EARLY_SECONDS = 1

LIBS = ("authkestra", "Authlib", "httpx-auth")


# -- output -------------------------------------------------------------------------------


MACHINE_TABLE = "Machine"
#: Every table printed, for --charts.
TABLES: list[tuple[str, list[str], list[list[Any]]]] = []


def table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    """A Markdown table (readable as text, pasteable into the README)."""
    TABLES.append((title, headers, rows))
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def note(text: str) -> None:
    print(f"\n{text}")
    sys.stdout.flush()


def machine() -> None:
    cpu = "unknown"
    physical: set[tuple[str, str]] = set()
    phys_id = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and cpu == "unknown":
                cpu = value
            elif key == "physical id":
                phys_id = value
            elif key == "core id":
                physical.add((phys_id, value))

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    def command(*argv: str) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except OSError:
            return "not installed"
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "?"

    try:
        op = json.loads((PEERS / "node_modules" / "oidc-provider" / "package.json").read_text())
        op_version = op["version"]
    except (OSError, ValueError, KeyError):
        op_version = "not installed"
    rows = [
        ["CPU", cpu],
        ["cores", f"{os.cpu_count()} logical, {len(physical) or '?'} physical"],
        ["OS", f"{platform.system()} {platform.release()}"],
        ["load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())],
        ["Python", f"{platform.python_implementation()} {platform.python_version()}"],
        ["authkestra", version("authkestra")],
        ["Authlib", version("Authlib")],
        ["httpx-auth", version("httpx-auth")],
        ["httpx", version("httpx")],
        ["anyio", version("anyio")],
        ["redis-py", version("redis")],
        ["node", command("node", "--version")],
        ["oidc-provider (npm)", op_version],
        ["redis-server", command("redis-server", "--version")],
    ]
    table(MACHINE_TABLE, ["", ""], rows)


# -- the authorization server ---------------------------------------------------------------


class Server:
    """npm oidc-provider on loopback, counting token requests."""

    def __init__(self, ttl: int, delay_ms: int = 0) -> None:
        self.ttl = ttl
        self.provider = OidcProvider(
            {
                "clients": [client(CLIENT_ID, SECRET, scope="read write")],
                "scopes": ["read", "write"],
                "ttl": ttl,
                "jwks": signing_jwks(),
                "countRequests": True,
                "tokenDelayMs": delay_ms,
            }
        )
        self.token_url = self.provider.token_url
        self._http = httpx.Client(timeout=10)

    def count(self) -> int:
        return int(self._http.get(f"{self.provider.issuer}/__counts").json()["token"])

    def reset(self) -> None:
        self._http.post(f"{self.provider.issuer}/__counts/reset").raise_for_status()

    def stop(self) -> None:
        self._http.close()
        self.provider.stop()


@contextlib.contextmanager
def server(ttl: int, delay_ms: int = 0) -> Iterator[Server]:
    srv = Server(ttl, delay_ms)
    try:
        yield srv
    finally:
        srv.stop()


def api_transport() -> httpx.MockTransport:
    """The API the callers call: answers 200 at once, no network."""
    return httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": True}))


# -- the three libraries, as their users would set them up ----------------------------------


class _HttpxAuthLib:
    """A library that is an ``httpx.Auth``: the same auth object on a sync and an async client."""

    name = ""

    def __init__(self, auth: httpx.Auth) -> None:
        self.auth = auth
        self.client = httpx.Client(auth=auth, transport=api_transport())
        self.aclient: httpx.AsyncClient | None = None

    async def astart(self) -> None:
        self.aclient = httpx.AsyncClient(auth=self.auth, transport=api_transport())

    def call(self) -> None:
        self.client.get(API_URL).raise_for_status()

    async def acall(self) -> None:
        assert self.aclient is not None
        (await self.aclient.get(API_URL)).raise_for_status()

    # The per-request auth step, as httpx drives it (next, then send the response).
    def step(self, request: httpx.Request, response: httpx.Response) -> None:
        _sync_cycle(self.auth, request, response)

    async def astep(self, request: httpx.Request, response: httpx.Response) -> None:
        await _async_cycle(self.auth, request, response)

    async def aclose(self) -> None:
        if self.aclient is not None:
            await self.aclient.aclose()
        self.client.close()


class AuthkestraLib(_HttpxAuthLib):
    """One flow; its auth on a sync and an async httpx client."""

    name = "authkestra"

    def __init__(self, token_url: str, cache: TokenCache | None = None) -> None:
        self.flow = ClientCredentialsFlow(CLIENT_ID, SECRET, token_url, cache=cache)
        super().__init__(self.flow.auth(SCOPES))

    def token(self) -> str:
        return self.flow.get_token_sync(SCOPES).access_token


class AuthlibLib:
    """``OAuth2Client`` / ``AsyncOAuth2Client`` with grant_type=client_credentials.

    The sync and the async client are separate objects with separate tokens:
    that is how Authlib is used from threads and from coroutines.
    """

    name = "Authlib"

    def __init__(self, token_url: str, leeway: float = PEER_EARLY_SECONDS) -> None:
        self.token_url = token_url
        self.leeway = leeway
        self.client = OAuth2Client(
            CLIENT_ID,
            SECRET,
            scope=SCOPE,
            token_endpoint=token_url,
            grant_type="client_credentials",
            leeway=leeway,
            mounts={API_ORIGIN: api_transport()},
        )
        self.aclient: AsyncOAuth2Client | None = None

    async def astart(self) -> None:
        self.aclient = AsyncOAuth2Client(
            CLIENT_ID,
            SECRET,
            scope=SCOPE,
            token_endpoint=self.token_url,
            grant_type="client_credentials",
            leeway=self.leeway,
            mounts={API_ORIGIN: api_transport()},
        )

    def call(self) -> None:
        self.client.get(API_URL).raise_for_status()

    async def acall(self) -> None:
        assert self.aclient is not None
        (await self.aclient.get(API_URL)).raise_for_status()

    # The usual work-around for MissingTokenError: fetch when there is no token yet.
    def call_lazy(self) -> None:
        if not self.client.token:
            self.client.fetch_token()
        self.call()

    async def acall_lazy(self) -> None:
        assert self.aclient is not None
        if not self.aclient.token:
            await self.aclient.fetch_token()
        await self.acall()

    def token(self) -> str:
        c = self.client
        if not c.token:
            c.fetch_token()
        c.ensure_active_token(c.token)
        return str(c.token["access_token"])

    # What OAuth2Client.request does before handing over to httpx, then the httpx auth step.
    def step(self, request: httpx.Request, response: httpx.Response) -> None:
        c = self.client
        if not c.token:
            raise MissingTokenError()
        if not c.ensure_active_token(c.token):
            raise InvalidTokenError()
        _sync_cycle(c.token_auth, request, response)

    async def astep(self, request: httpx.Request, response: httpx.Response) -> None:
        c = self.aclient
        assert c is not None
        if not c.token:
            raise MissingTokenError()
        await c.ensure_active_token(c.token)
        await _async_cycle(c.token_auth, request, response)

    async def aclose(self) -> None:
        if self.aclient is not None:
            await self.aclient.aclose()
        self.client.close()


class HttpxAuthLib(_HttpxAuthLib):
    """``httpx_auth.OAuth2ClientCredentials``: one auth object on both clients."""

    name = "httpx-auth"

    def __init__(
        self, token_url: str, early_expiry: float = PEER_EARLY_SECONDS, *, clear: bool = True
    ) -> None:
        if clear:
            httpx_auth.OAuth2.token_cache.clear()  # its cache is process-global
        self.oauth = httpx_auth.OAuth2ClientCredentials(
            token_url, CLIENT_ID, SECRET, scope=SCOPE, early_expiry=early_expiry
        )
        super().__init__(self.oauth)

    def token(self) -> str:
        request = httpx.Request("GET", API_URL)
        next(self.oauth.sync_auth_flow(request))
        return request.headers["Authorization"]


Lib = AuthkestraLib | AuthlibLib | HttpxAuthLib


def _sync_cycle(auth: httpx.Auth, request: httpx.Request, response: httpx.Response) -> None:
    """One request's worth of ``httpx.Auth``, as ``httpx.Client`` drives it."""
    flow = auth.sync_auth_flow(request)
    next(flow)
    try:
        flow.send(response)
    except StopIteration:
        pass
    else:  # pragma: no cover - a 200 is never retried
        raise AssertionError("auth flow asked to resend a 200")


async def _async_cycle(auth: httpx.Auth, request: httpx.Request, response: httpx.Response) -> None:
    """The same for ``httpx.AsyncClient`` (it runs the generator to its end)."""
    flow = auth.async_auth_flow(request)
    await flow.__anext__()
    try:
        await flow.asend(response)
    except StopAsyncIteration:
        pass
    else:  # pragma: no cover
        raise AssertionError("auth flow asked to resend a 200")


_BUILDER: list[httpx.Client] = []


def new_request() -> tuple[httpx.Request, httpx.Response]:
    """A request as an ``httpx.Client`` builds it (5 default headers) and its 200."""
    if not _BUILDER:
        _BUILDER.append(httpx.Client())  # one: each new client loads the CA bundle
    request = _BUILDER[0].build_request("GET", API_URL)
    return request, httpx.Response(200, request=request)


# -- helpers for concurrent callers ---------------------------------------------------------


def _outcome(exc: BaseException | None) -> str:
    return "ok" if exc is None else type(exc).__name__


async def run_burst(
    sync_call: Callable[[], None] | None,
    async_call: Callable[[], Awaitable[None]] | None,
    n_threads: int,
    n_coroutines: int,
) -> tuple[Counter[str], Counter[str], float]:
    """Release threads and coroutines at once; outcomes per kind and the wall time.

    Runs in the caller's event loop: the coroutines share it with the library's
    async client, and the loop never blocks while the threads run (a thread may
    be waiting for a token request that a coroutine leads).
    """
    thread_out: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(n_threads + 1)

    def thread_main() -> None:
        assert sync_call is not None
        barrier.wait()
        err: BaseException | None = None
        try:
            sync_call()
        except Exception as exc:
            err = exc
        with lock:
            thread_out[_outcome(err)] += 1

    gate = asyncio.Event()

    async def one() -> str:
        assert async_call is not None
        await gate.wait()
        try:
            await async_call()
        except Exception as exc:
            return _outcome(exc)
        return "ok"

    threads = [threading.Thread(target=thread_main) for _ in range(n_threads)]
    for t in threads:
        t.start()
    tasks = [asyncio.create_task(one()) for _ in range(n_coroutines)]
    await asyncio.sleep(0)  # every task now waits on the gate
    await asyncio.to_thread(_until_waiting, barrier, n_threads)
    started = time.perf_counter()
    barrier.wait()  # the threads are all parked on it: returns at once and frees them
    gate.set()
    coro_out = Counter(await asyncio.gather(*tasks))
    for t in threads:
        await asyncio.to_thread(t.join)
    return coro_out, thread_out, time.perf_counter() - started


def _until_waiting(barrier: threading.Barrier, n: int) -> None:
    while barrier.n_waiting < n:
        time.sleep(0.001)


def fmt_outcomes(out: Counter[str], total: int) -> str:
    if not total:
        return "-"
    return ", ".join(f"{n} {k}" for k, n in sorted(out.items(), key=lambda kv: -kv[1]))


# -- case 4: the hot path -----------------------------------------------------------------------


#: Timing: many short loops, the best kept, on the thread's CPU clock (the cost
#: of the code itself: other processes on a shared machine cannot inflate it by
#: taking the CPU away mid-loop, though they still disturb caches). The loops of
#: all the operations of a table are interleaved in ROUNDS rounds, so a burst of
#: activity elsewhere on the machine cannot spoil every loop of one operation.
ROUNDS = 6
REPEAT = 5
LOOP_TIME = 0.02
#: In a smoke run, one short loop of each: it proves the code runs, it measures nothing.
SMOKE_TIMING = (1, 1, 0.001)
cpu_clock = time.thread_time


def quick_timing() -> None:
    """Time as a smoke run does (see :data:`SMOKE_TIMING`)."""
    global ROUNDS, REPEAT, LOOP_TIME
    ROUNDS, REPEAT, LOOP_TIME = SMOKE_TIMING


def _calibrate(fn: Callable[[], Any]) -> int:
    n = 100
    while True:
        t0 = cpu_clock()
        for _ in range(n):
            fn()
        if cpu_clock() - t0 >= LOOP_TIME:
            return n
        n *= 2


def measure(fns: dict[Any, Callable[[], Any]]) -> dict[Any, float]:
    """Microseconds per call of each function: best loop of ROUNDS x REPEAT."""
    loops = {key: _calibrate(fn) for key, fn in fns.items()}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(ROUNDS):
        for key, fn in fns.items():
            n = loops[key]
            for _ in range(REPEAT):
                t0 = cpu_clock()
                for _ in range(n):
                    fn()
                best[key] = min(best[key], (cpu_clock() - t0) / n * 1e6)
    return best


async def ameasure(fns: dict[Any, Callable[[], Awaitable[Any]]]) -> dict[Any, float]:
    """The same for async calls, awaited in a loop inside the running event loop."""
    loops: dict[Any, int] = {}
    for key, fn in fns.items():
        n = 100
        while True:
            t0 = cpu_clock()
            for _ in range(n):
                await fn()
            if cpu_clock() - t0 >= LOOP_TIME:
                break
            n *= 2
        loops[key] = n
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(ROUNDS):
        for key, fn in fns.items():
            n = loops[key]
            for _ in range(REPEAT):
                t0 = cpu_clock()
                for _ in range(n):
                    await fn()
                best[key] = min(best[key], (cpu_clock() - t0) / n * 1e6)
    return best


def _next_only(auth: httpx.Auth, request: httpx.Request) -> Callable[[], None]:
    def run() -> None:
        next(auth.sync_auth_flow(request))

    return run


# -- the command line of every case --------------------------------------------------------


def run(case: Callable[..., None], smoke: dict[str, Any], argv: list[str] | None = None) -> int:
    """Run ``case`` as its script's ``main``: the machine first, then the case's tables.

    ``--smoke`` runs it with ``smoke`` (small numbers, short loops): seconds long, so that
    ``make check`` can run every benchmark and a broken one fails the build.
    """
    parser = argparse.ArgumentParser(description=(case.__doc__ or "").strip().splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a seconds-long run that only checks the case works"
    )
    parser.add_argument("--charts", type=Path, help="draw each table as a PNG into this directory")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.smoke:
        quick_timing()
    machine()
    case(**(smoke if args.smoke else {}))
    note(f"Total time: {time.perf_counter() - started:.0f} s")
    if args.charts and not args.smoke:
        from bench._charts import table_charts

        measured = [t for t in TABLES if t[0] != MACHINE_TABLE]
        for path in table_charts(measured, args.charts, Path(sys.argv[0]).stem):
            note(f"chart: {path}")
    return 0


# -- the server's ASGI app, called directly -----------------------------------------------


def asgi_form_post(
    app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> Callable[[], Awaitable[tuple[int, bytes]]]:
    """A call of ``POST path`` with a form ``body`` straight into the ASGI ``app`` (no
    socket, no HTTP parsing): (status, body) of each answer."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 9),
        "headers": [
            (b"host", b"127.0.0.1:9"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def call() -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({**scope, "state": {}}, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    return call
