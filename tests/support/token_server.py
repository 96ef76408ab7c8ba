"""A token endpoint for cache tests: counts requests, can be slow, down, or short-lived."""

from __future__ import annotations

import json
import threading
import time

from tests.support.hostile_server import HostileServer, Received, Reply


class TokenServer:
    """Issues ``tok-1``, ``tok-2``, ... with ``expires_in``; ``down`` makes it answer 503."""

    def __init__(self, expires_in: int | None = 300, delay: float = 0.0) -> None:
        self.server = HostileServer()
        self.url = f"{self.server.url}/token"
        self.expires_in = expires_in
        self.delay = delay
        self.down = False
        self.issued = 0
        self._lock = threading.Lock()
        self.extra: dict[str, object] = {}
        self.access_token_factory = lambda n: f"tok-{n}"
        self.server.script = self._answer

    def _answer(self, request: Received) -> Reply:
        if request.path != "/token":
            return Reply(404, "")
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            return Reply(503, "down", content_type="text/plain")
        with self._lock:
            self.issued += 1
            n = self.issued
        body: dict[str, object] = {
            "access_token": self.access_token_factory(n),
            "token_type": "Bearer",
        }
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        body.update(self.extra)
        return Reply(200, json.dumps(body))

    @property
    def requests(self) -> int:
        return sum(1 for r in self.server.received if r.path == "/token")

    def stop(self) -> None:
        self.server.stop()
