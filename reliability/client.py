"""HTTP as a drill's clients speak it: API calls with a token, a portal session signed in
through the login form, and a threaded load generator that records every answer."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# The drills' gunicorn speaks plain http; production settings trust X-Forwarded-Proto, so
# the portal's secure cookies and CSRF checks behave as behind a TLS proxy.
HTTPS = {"X-Forwarded-Proto": "https"}


@dataclass
class Answer:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    seconds: float
    kind: str = ""

    @property
    def code(self) -> str:
        return self.body.get("code", "") if isinstance(self.body, dict) else ""


def _decode(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            return None
    return response.text


class Api:
    """One caller with one token (a keep-alive connection per instance: one per thread)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}", **HTTPS}, timeout=timeout
        )

    def call(self, method: str, path: str, json: Any = None, kind: str = "", **headers: str) -> Answer:
        started = time.perf_counter()
        try:
            response = self.client.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            return Answer(method, path, 0, {"error": type(exc).__name__}, {}, time.perf_counter() - started, kind)
        return Answer(
            method,
            path,
            response.status_code,
            _decode(response),
            dict(response.headers),
            time.perf_counter() - started,
            kind,
        )

    def close(self) -> None:
        self.client.close()


class Portal:
    """A person signed in to the portal (the login form, its CSRF token, the session cookie)."""

    def __init__(self, base_url: str, username: str, password: str = "demo") -> None:  # noqa: S107
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, headers=HTTPS, timeout=30.0, follow_redirects=False)
        self.cookies: dict[str, str] = {}
        page = self.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        origin = base_url.replace("http://", "https://")
        answer = self.client.post(
            "/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1) if token else ""},
            headers={**HTTPS, "Cookie": self._cookie_header(), "Origin": origin, "Referer": origin + "/login/"},
        )
        self._keep(answer)
        if answer.status_code != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"portal sign-in of {username} failed: {answer.status_code} {answer.text[:300]}")

    def _cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def _keep(self, response: httpx.Response) -> None:
        # Secure cookies are not sent back over plain http by a cookie jar; keep them by hand.
        for name, value in response.cookies.items():
            self.cookies[name] = value

    def get(self, path: str) -> httpx.Response:
        response = self.client.get(path, headers={**HTTPS, "Cookie": self._cookie_header()})
        self._keep(response)
        return response


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class LoadResult:
    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    def latency_ms(self, kind: str | None = None) -> dict[str, float]:
        values = [a.seconds * 1000 for a in self.answers if kind is None or a.kind == kind]
        return {
            "n": len(values),
            "p50": round(percentile(values, 50), 1),
            "p95": round(percentile(values, 95), 1),
            "p99": round(percentile(values, 99), 1),
            "mean": round(statistics.fmean(values), 1) if values else 0.0,
        }


def run_load(
    clients: int,
    seconds: float,
    make_caller: Callable[[int], Any],
    step: Callable[[Any, int, int], Answer],
) -> LoadResult:
    """`clients` threads, each with `make_caller(i)`, calling `step(caller, i, n)` until
    `seconds` have passed; every answer is kept."""
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    start = threading.Barrier(clients)

    def worker(i: int) -> None:
        caller = make_caller(i)
        mine: list[Answer] = []
        start.wait()
        n = 0
        while time.monotonic() < deadline:
            mine.append(step(caller, i, n))
            n += 1
        with lock:
            result.answers.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    result.seconds = time.monotonic() - began
    return result
