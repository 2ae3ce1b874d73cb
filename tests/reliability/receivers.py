"""Local webhook receivers for the tests: http.server on 127.0.0.1, a random port, in a thread.

Each receiver answers from a script of behaviours (then a default): an answer with a
status, headers and body, optionally after a delay, or a hang that outlasts the client's
read timeout. It records every request it got (headers, body, when).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


@dataclass(frozen=True)
class Hang:
    """Accept the request and say nothing for `seconds` (longer than the read timeout)."""

    seconds: float = 3.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return self.headers["marketerapi-event-id"]


class Receiver:
    def __init__(
        self,
        *script: Answer | Hang,
        default: Answer | Hang | None = None,
        rule: Callable[[Received], Answer | Hang | None] | None = None,
    ) -> None:
        self.script: deque[Answer | Hang] = deque(script)
        self.default = default or Answer()
        # Decides by what was received (before the script), e.g. fail one event only.
        self.rule = rule
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                with receiver._lock:
                    receiver.received.append(got)
                    behaviour = receiver.rule(got) if receiver.rule else None
                    if behaviour is None:
                        behaviour = receiver.script.popleft() if receiver.script else receiver.default
                if isinstance(behaviour, Hang):
                    time.sleep(behaviour.seconds)
                    self.close_connection = True
                    return
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                self.send_response(behaviour.status)
                for name, value in behaviour.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(behaviour.body)))
                self.end_headers()
                self.wfile.write(behaviour.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def then(self, *script: Answer | Hang) -> None:
        with self._lock:
            self.script.extend(script)

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for r in self.received]


@contextmanager
def receivers() -> Iterator[Any]:
    """`with receivers() as start: r = start(Answer(500), default=Answer())`; all stop at exit."""
    started: list[Receiver] = []

    def start(*script: Answer | Hang, default: Answer | Hang | None = None, rule: Any = None) -> Receiver:
        receiver = Receiver(*script, default=default, rule=rule).start()
        started.append(receiver)
        return receiver

    try:
        yield start
    finally:
        for receiver in started:
            receiver.stop()


def closed_port_url() -> str:
    """A loopback URL on which nothing listens (connection refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
