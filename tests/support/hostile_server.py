"""A loopback HTTP server that answers exactly the bytes a test scripts.

For the corpus of malformed and hostile responses: it can send what no real
HTTP framework would (broken JSON, endless bodies, a body dripped a byte at a
time, a dropped connection), and it records what the client sent.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Received:
    """One request as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """What to answer: a status, headers and a body, or a special behaviour."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    #: None, "close" (drop the connection), "hang" (never answer), "drip" (1 byte/0.2 s),
    #: "endless" (a body that never ends).
    behaviour: str | None = None
    raw: bytes | None = None  # send these bytes as the whole answer

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        body = self.body.encode() if isinstance(self.body, str) else self.body
        lines = [f"HTTP/1.1 {self.status} X"]
        headers = dict(self.headers)
        if self.content_type:
            headers.setdefault("Content-Type", self.content_type)
        if self.behaviour != "endless":
            headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Connection", "close")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


Script = Callable[[Received], Reply]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            method, path, _ = request_line.split(" ", 2)
            received = Received(method, path, headers, body)
            self.server.received.append(received)
            reply = self.server.script(received)
            self._answer(sock, reply)
        except OSError:
            return

    def _answer(self, sock: socket.socket, reply: Reply) -> None:
        stop = self.server.stopping
        if reply.behaviour == "close":
            return
        if reply.behaviour == "hang":
            stop.wait(30)
            return
        payload = reply.encode()
        if reply.behaviour == "drip":
            for i in range(len(payload)):
                if stop.wait(0.2):
                    return
                sock.sendall(payload[i : i + 1])
            return
        sock.sendall(payload)
        if reply.behaviour == "endless":
            chunk = b" " * 65536
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                sock.sendall(chunk)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.script: Script = lambda _r: Reply(404)
        self.stopping = threading.Event()


class HostileServer:
    """Start with ``HostileServer()``, set ``.script`` (or ``.replies``), ``.stop()`` at the end."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"

    @property
    def received(self) -> list[Received]:
        return self._server.received

    @property
    def script(self) -> Script:
        return self._server.script

    @script.setter
    def script(self, script: Script) -> None:
        self._server.script = script

    def reply_with(self, *replies: Reply) -> None:
        """Answer each request with the next reply; repeat the last one."""
        queue = list(replies)

        def script(_request: Received) -> Reply:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.script = script

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
