"""A small fake HTTP server for tests: a real socket on 127.0.0.1 and a random port, a thread
per request, every request recorded, and scripted answers (status, headers, body, delay)
that override the normal handling — to play a vendor that is down, slow, hanging or
rate limiting.

    with FakeServer() as server:
        server.script(503, times=5)           # the next five requests answer 503
        server.always(500)                    # every request answers 500 from now on
        server.always(200, delay=5)           # hang past the client's read timeout
        ... server.url ... server.requests ...
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None  # only requests whose path starts with this


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) leaves a broken pipe behind: expected here.
        pass


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._scripted: deque[Answer] = deque()
        self._always: Answer | None = None
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                status, headers, payload, delay = fake._answer(recorded)
                if delay:
                    time.sleep(delay)
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    headers = {"Content-Type": "application/json", **headers}
                    for name, value in headers.items():
                        self.send_header(name, str(value))
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting --

    def script(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        times: int = 1,
        delay: float = 0.0,
        path: str | None = None,
    ) -> None:
        with self._lock:
            for _ in range(times):
                self._scripted.append(
                    Answer(status, body if body is not None else {}, dict(headers or {}), delay, path)
                )

    def always(self, status: int, body: Any = None, headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        self._always = Answer(status, body if body is not None else {"message": "scripted"}, dict(headers or {}), delay)

    def heal(self) -> None:
        """Back to normal: no scripted answers."""
        with self._lock:
            self._scripted.clear()
            self._always = None

    def _answer(self, request: Recorded) -> tuple[int, dict[str, str], Any, float]:
        with self._lock:
            self.requests.append(request)
            for index, answer in enumerate(self._scripted):
                if answer.path is None or request.path.startswith(answer.path):
                    del self._scripted[index]
                    return answer.status, self.decorate(answer.headers), answer.body, answer.delay
            if self._always is not None:
                a = self._always
                return a.status, self.decorate(a.headers), a.body, a.delay
        status, headers, body = self.handle(request)
        return status, self.decorate(headers), body, 0.0

    # -- what subclasses change --

    def decorate(self, headers: dict[str, str]) -> dict[str, str]:
        """Headers every response carries (a vendor's rate-limit headers)."""
        return headers

    def handle(self, request: Recorded) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"ok": True}

    # -- reading what happened --

    def calls(self, path_prefix: str = "", method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r for r in self.requests if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]
