"""The drills. Each is one function, registered with `@scenario`, that acts on the running
stack and returns an `Outcome`: what was done, what was expected, what was observed, passed
or not, and its figures. docs/reliability.md is written from the outcomes.

Adding a drill (a later issue's campaigns or exports) is one function here:

    @scenario("h", "Export survives a worker kill")
    def export_kill(ctx: Context) -> Outcome:
        ...                              # ctx.api("operator"), ctx.stack, ctx.size(...)
        return Outcome(done=..., expected=..., observed=..., passed=..., figures={...})

Sizes come from ctx.size(name, bounded, full): RELIABILITY_<NAME> overrides both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability.client import Answer, Api, Portal, percentile, run_load
from reliability.stack import ROOT, VAR, Stack

TERMINAL = {"succeeded", "partially_succeeded", "failed", "cancelled"}
# Rules that match every profile.
EVERYONE = {"attr": "external_id", "op": "neq", "value": "-"}
ROLES = {
    "analyst": "demo-analyst",
    "operator": "demo-operator",
    "approver": "demo-approver",
    "compliance": "demo-compliance",
    "developer": "demo-developer",
    "admin": "demo-admin",
}


@dataclass
class Outcome:
    done: str
    expected: str
    observed: str
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    key: str
    title: str
    run: Callable[[Context], Outcome]


SCENARIOS: list[Scenario] = []


def scenario(key: str, title: str) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    def register(function: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        SCENARIOS.append(Scenario(key, title, function))
        return function

    return register


class Context:
    # Sandbox tokens issued per role before the drills (a drill that needs its own rate-limit
    # counts takes a fresh one).
    TOKENS_EACH = 6

    def __init__(self, stack: Stack, bounded: bool) -> None:
        self.stack = stack
        self.bounded = bounded
        by_user = stack.seed_users(list(ROLES.values()), self.TOKENS_EACH)
        self.pool = {role: list(by_user[user]) for role, user in ROLES.items()}
        self.tokens: dict[str, str] = {}

    def size(self, name: str, bounded: float, full: float) -> float:
        value = os.environ.get(f"RELIABILITY_{name.upper()}")
        return float(value) if value else (bounded if self.bounded else full)

    def token(self, role: str, fresh: bool = False) -> str:
        if fresh or role not in self.tokens:
            if not self.pool[role]:
                raise RuntimeError(f"no fresh {role} token left; raise Context.TOKENS_EACH")
            secret = self.pool[role].pop()
            if fresh:
                return secret
            self.tokens[role] = secret
        return self.tokens[role]

    def api(self, role: str, fresh: bool = False) -> Api:
        return Api(self.stack.base_url, self.token(role, fresh))


# --- helpers -----------------------------------------------------------------------


def wait_for(check: Callable[[], Any], timeout: float, every: float = 0.25) -> tuple[Any, float]:
    """Call `check` until it returns something truthy or `timeout` passes: (value, seconds)."""
    started = time.monotonic()
    value = None
    while time.monotonic() - started < timeout:
        value = check()
        if value:
            break
        time.sleep(every)
    return value, round(time.monotonic() - started, 1)


def new_audience(api: Api, name: str) -> int:
    answer = api.call(
        "POST",
        "/api/v1/audiences",
        {"name": name, "channel": "email", "purpose": "drill", "description": "Reliability drill.", "rules": EVERYONE},
    )
    if answer.status != 201:
        raise RuntimeError(f"creating an audience: {answer.status} {answer.body}")
    return int(answer.body["id"])


def job_state(api: Api, job_id: int) -> dict[str, Any]:
    answer = api.call("GET", f"/api/v1/jobs/{job_id}")
    return answer.body if answer.status == 200 and isinstance(answer.body, dict) else {}


HALF_VERSIONS = """
SELECT v.id, v.state, v.members,
       (SELECT count(*) FROM audiences_membership m WHERE m.version_id = v.id) AS rows
FROM audiences_audienceversion v
WHERE (v.state = 'ready' AND v.members_retained
       AND v.members IS DISTINCT FROM (SELECT count(*) FROM audiences_membership m WHERE m.version_id = v.id))
   OR v.id IN (SELECT a.live_version_id FROM audiences_audience a WHERE a.live_version_id IS NOT NULL
               AND EXISTS (SELECT 1 FROM audiences_audienceversion x WHERE x.id = a.live_version_id
                           AND x.state <> 'ready'))
"""


def _server_errors(answers: list[Answer]) -> list[str]:
    return [f"{a.method} {a.path} → {a.status} {a.code}" for a in answers if a.status >= 500 and a.status != 503]


# --- a) a worker killed mid-publish ---------------------------------------------------


@scenario("a", "SIGKILL a Celery worker mid-publish")
def publish_worker_killed(ctx: Context) -> Outcome:
    import psycopg

    operator = ctx.api("operator")
    audience = new_audience(operator, f"Drill publish {uuid.uuid4().hex[:6]}")
    # Hold the membership table so the build blocks after the worker claimed the job: the
    # kill lands mid-publish whatever the machine's speed.
    blocker = psycopg.connect(ctx.stack.postgres.url)
    blocker.execute("LOCK TABLE audiences_membership IN SHARE MODE")
    answer = operator.call("POST", f"/api/v1/audiences/{audience}/publish", {})
    if answer.status != 202 or "job" not in answer.body:
        blocker.close()
        return Outcome("publish", "202 with a job", f"{answer.status} {answer.body}", False)
    job_id = int(answer.body["job"]["id"])
    running, _ = wait_for(lambda: job_state(operator, job_id).get("state") == "running", 30)
    time.sleep(1.0)
    ctx.stack.processes["worker"].kill()
    blocker.rollback()
    blocker.close()
    live_after_kill = operator.call("GET", f"/api/v1/audiences/{audience}").body.get("live_version")
    half_after_kill = ctx.stack.postgres.query(HALF_VERSIONS)

    ctx.stack.start_worker()
    limit = ctx.size("publish_recovery_seconds", 60, 60)
    final, seconds = wait_for(
        lambda: (s := job_state(operator, job_id)) and s.get("state") in TERMINAL and s, limit, every=1.0
    )
    state = (final or job_state(operator, job_id)) or {}
    half_after = ctx.stack.postgres.query(HALF_VERSIONS)
    passed = bool(running) and bool(final) and not half_after_kill and not half_after and live_after_kill is None
    return Outcome(
        done="Publish an audience of every sandbox profile; SIGKILL the worker (its process group) while the "
        "job is `running` and its build is writing members; start a new worker.",
        expected=f"No half-built version is ever live; the job ends in a true terminal state within {limit:.0f} s "
        "of the restart, saying what happened.",
        observed=(
            f"job {job_id} was {'running' if running else 'never seen running'} at the kill; "
            f"live version after the kill: {live_after_kill}; half versions: {len(half_after_kill)} after the kill, "
            f"{len(half_after)} at the end; job `{state.get('state')}` "
            + (f"{seconds} s after the restart" if final else f"still after {limit:.0f} s")
            + (f" — {str(state.get('message') or state.get('error') or '')[:160]}" if state else "")
        ),
        passed=passed,
        figures={"recovery_s": seconds if final else None, "job_state": state.get("state")},
    )


# --- b) a worker killed mid webhook dispatch -----------------------------------------


@scenario("b", "SIGKILL a Celery worker mid webhook dispatch")
def webhook_worker_killed(ctx: Context) -> Outcome:
    sys.path.insert(0, str(ROOT))
    from tests.reliability.receivers import Answer as Reply
    from tests.reliability.receivers import Receiver

    events = int(ctx.size("webhook_events", 30, 200))
    receiver = Receiver(default=Reply(delay=0.1))
    # A kill cuts deliveries mid-answer; the receiver need not print each broken pipe.
    receiver.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    receiver.start()
    developer = ctx.api("developer")
    try:
        hook = developer.call("POST", "/api/v1/webhooks", {"url": receiver.url, "event_types": ["consent.updated"]})
        if hook.status != 201:
            return Outcome("subscribe", "201", f"{hook.status} {hook.body}", False)
        run = uuid.uuid4().hex[:6]
        ids = [f"drill-{run}-{i}" for i in range(events)]
        ingest = developer.call(
            "POST", "/api/v1/profiles/bulk", {"profiles": [{"external_id": i, "region": "EU"} for i in ids]}
        )
        now = datetime.now(UTC).isoformat()
        updates = [
            {"external_id": i, "channel": "email", "status": "granted", "source": "signup_form", "captured_at": now}
            for i in ids
        ]
        sync = developer.call("POST", "/api/v1/consent/sync", {"updates": updates})
        if ingest.status >= 300 or sync.status >= 300:
            return Outcome("ingest", "2xx", f"{ingest.status} {sync.status} {sync.body}", False)
        some, _ = wait_for(lambda: len(receiver.received) >= max(2, events // 5), 60, every=0.05)
        ctx.stack.processes["worker"].kill()
        at_kill = len(receiver.received)
        ctx.stack.start_worker()
        # Deliveries a killed worker had claimed are leased for integrations.webhooks.delivery.LEASE
        # (5 minutes); the full run waits that long to tell "late" from "lost".
        limit = ctx.size("webhook_recovery_seconds", 90, 400)
        done, seconds = wait_for(lambda: len(set(receiver.event_ids())) >= events, limit, every=0.5)
        time.sleep(3)  # a late duplicate would arrive now
        counts = Counter(receiver.event_ids())
        distinct = len(counts)
        twice = sum(1 for c in counts.values() if c > 1)
        lost = events - distinct
        passed = bool(some) and lost == 0 and twice <= 8
        return Outcome(
            done=f"Subscribe a local receiver (100 ms per answer) to consent.updated; sync consent for {events} "
            f"new profiles ({events} events); SIGKILL the worker after {at_kill} deliveries; start a new one.",
            expected="Every event delivered (nothing lost); at most the deliveries in flight at the kill "
            "(WEBHOOK_CONCURRENCY, 8) repeated, with the same Marketerapi-Event-Id so receivers deduplicate.",
            observed=f"{distinct}/{events} distinct events received "
            + (f"{seconds} s after the restart" if done else f"after {limit:.0f} s")
            + f"; {lost} lost; {twice} delivered twice (same event id); {len(receiver.received)} requests in all.",
            passed=passed,
            figures={"events": events, "lost": lost, "repeated": twice, "recovery_s": seconds},
        )
    finally:
        receiver.stop()


# --- c) Redis stopped ------------------------------------------------------------------


@scenario("c", "Stop Redis, then start it again")
def redis_outage(ctx: Context) -> Outcome:
    analyst, operator = ctx.api("analyst"), ctx.api("operator")
    audience = new_audience(operator, f"Drill redis {uuid.uuid4().hex[:6]}")
    portal = Portal(ctx.stack.base_url, "demo-operator")
    ctx.stack.redis.stop()
    try:
        status = analyst.call("GET", "/api/v1/status")
        read = analyst.call("GET", "/api/v1/audiences")
        page_home, page_list = portal.get("/"), portal.get("/audiences/")
    finally:
        ctx.stack.redis.start()
    cache_down = isinstance(status.body, dict) and status.body.get("cache", {}).get("status") == "down"
    friendly = all(
        p.status_code == 503 and "A service is not answering" in p.text for p in (page_home, page_list)
    ) or all(p.status_code == 200 for p in (page_home, page_list))
    read_ok = read.status == 200 or (read.status == 503 and read.code == "service_unavailable")
    # After the restart: the cache is back, the worker reconnects to the broker and a job runs.
    back, back_s = wait_for(
        lambda: analyst.call("GET", "/api/v1/status").body.get("cache", {}).get("status") == "ok", 30, every=1
    )
    publish = operator.call("POST", f"/api/v1/audiences/{audience}/publish", {})
    job_id = publish.body.get("job", {}).get("id") if isinstance(publish.body, dict) else None
    _, job_s = (
        wait_for(lambda: job_state(operator, job_id).get("state") in TERMINAL, 90, every=1) if job_id else (None, 0)
    )
    end_state = job_state(operator, job_id).get("state") if job_id else None
    passed = status.status == 200 and cache_down and friendly and read_ok and bool(back) and end_state == "succeeded"
    return Outcome(
        done="Stop the drills' Redis (cache, rate limits, broker); call GET /status and an API read, open the "
        "portal's / and /audiences/; start Redis; publish an audience.",
        expected="/status answers 200 reporting the cache down; API reads answer the documented fallback "
        "(503 service_unavailable with Retry-After, never a 500); the portal shows its friendly page; after the "
        "restart the worker picks up a new publish and it succeeds.",
        observed=f"/status {status.status}, cache {'down' if cache_down else 'not reported down'}; "
        f"GET /audiences {read.status} {read.code} in {read.seconds * 1000:.0f} ms "
        f"(Retry-After {read.headers.get('retry-after', '-')}); portal / {page_home.status_code}, "
        f"/audiences/ {page_list.status_code}; cache ok again after {back_s} s; publish "
        f"{publish.status} → job {end_state} after {job_s} s.",
        passed=passed,
        figures={"read_ms": round(read.seconds * 1000), "job_after_restart_s": job_s},
    )


# --- d) PostgreSQL restarted under load ------------------------------------------------


@scenario("d", "Restart PostgreSQL under load")
def postgres_restart(ctx: Context) -> Outcome:
    clients = int(ctx.size("pg_clients", 8, 40))
    seconds = ctx.size("pg_seconds", 20, 40)
    token = ctx.token("developer")
    paths = ["/api/v1/audiences?limit=5", "/api/v1/me", "/api/v1/profiles?limit=5"]

    def step(api: Api, i: int, n: int) -> Answer:
        answer = api.call("GET", paths[(i + n) % len(paths)], kind="read")
        answer.body = {"code": answer.code}  # keep memory small
        answer.headers = {}
        answer.path = f"{answer.path}@{time.monotonic():.3f}"
        return answer

    import threading

    restart_at: dict[str, float] = {}

    def restart() -> None:
        time.sleep(seconds / 4)
        restart_at["start"] = time.monotonic()
        ctx.stack.postgres.restart()
        restart_at["end"] = time.monotonic()

    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    result = run_load(clients, seconds, lambda i: Api(ctx.stack.base_url, token), step)
    restarter.join(60)
    statuses = result.statuses()
    errors = _server_errors(result.answers)
    unavailable = [a for a in result.answers if a.status == 503]
    stamps = sorted(float(a.path.rsplit("@", 1)[1]) for a in unavailable)
    gap = round(stamps[-1] - stamps[0], 1) if stamps else 0.0
    tail = [a for a in result.answers if float(a.path.rsplit("@", 1)[1]) > restart_at.get("end", 0) + 2]
    recovered = bool(tail) and all(a.status in (200, 429) for a in tail)
    codes = Counter(a.code for a in unavailable)
    passed = not errors and recovered and not [a for a in result.answers if a.status == 0]
    return Outcome(
        done=f"{clients} clients read the API for {seconds:.0f} s; the drills' PostgreSQL cluster is restarted "
        f"(pg_ctlcluster restart) a quarter of the way in.",
        expected="During the gap only 503 service_unavailable (with Retry-After); no 500 and no dropped "
        "connection; every answer from 2 s after PostgreSQL is back is a 200.",
        observed=f"statuses {dict(sorted(statuses.items()))}; 503 codes {dict(codes)}; 503s over {gap} s; "
        f"restart took {restart_at.get('end', 0) - restart_at.get('start', 0):.1f} s; "
        f"after recovery {len(tail)} answers, all 200: {recovered}" + (f"; 5xx: {errors[:3]}" if errors else ""),
        passed=passed,
        figures={"requests": len(result.answers), "503": statuses.get(503, 0), "500": statuses.get(500, 0)},
    )


# --- e) load on a governed mix ----------------------------------------------------------


def _limit_of(answer: Answer) -> tuple[str, int] | None:
    policy = answer.headers.get("ratelimit-policy", "")
    # "write";q=120;w=60
    try:
        name = policy.split(";")[0].strip('"')
        quota = int(policy.split("q=")[1].split(";")[0])
    except (IndexError, ValueError):
        return None
    return name, quota


@scenario("e", "Load: concurrent clients on a governed mix")
def load_mix(ctx: Context) -> Outcome:
    clients = int(ctx.size("clients", 20, 200))
    seconds = ctx.size("load_seconds", 10, 60)
    roles = ["analyst", "operator", "developer", "approver", "compliance"]
    tokens = {role: ctx.token(role, fresh=True) for role in roles}
    operator = ctx.api("operator")
    audience = new_audience(operator, f"Drill load {uuid.uuid4().hex[:6]}")
    preview = {"rules": {"attr": "region", "op": "in", "value": ["EU"]}, "channel": "email"}

    def step(api: Any, i: int, n: int) -> Answer:
        role, client = api
        pick = (i * 7 + n) % 10
        if pick < 6:
            path = ("/api/v1/audiences?limit=10", "/api/v1/me", "/api/v1/profiles?limit=10")[n % 3]
            answer = client.call("GET", path, kind="read")
        elif pick < 8:
            answer = client.call("POST", "/api/v1/audiences/preview", preview, kind="preview")
        elif role == "operator":
            answer = client.call(
                "PATCH", f"/api/v1/audiences/{audience}", {"description": f"load {i}-{n}"}, kind="write"
            )
        else:
            answer = client.call("POST", f"/api/v1/audiences/{audience}/validate", {}, kind="preview")
        answer.body = {"code": answer.code}
        answer.path = f"{role}|{answer.path}"
        return answer

    result = run_load(
        clients,
        seconds,
        lambda i: (roles[i % len(roles)], Api(ctx.stack.base_url, tokens[roles[i % len(roles)]])),
        step,
    )
    statuses = result.statuses()
    errors = [a for a in result.answers if a.status >= 500 or a.status == 0]
    # Rate-limit arithmetic, per token and rate class: inside one window, accepted = min(sent, limit).
    per: dict[tuple[str, str], Counter[str]] = {}
    limits: dict[tuple[str, str], int] = {}
    for a in result.answers:
        found = _limit_of(a)
        if not found:
            continue
        key = (a.path.split("|")[0], found[0])
        limits[key] = found[1]
        # A 429 `preview_busy` is the preview budget's concurrency limit (docs/limits.md): the
        # rate limiter had counted and let that request through.
        per.setdefault(key, Counter())["429" if a.status == 429 and a.code != "preview_busy" else "ok"] += 1
    mismatches = []
    if result.seconds < 58:
        for key, counts in per.items():
            sent = counts["ok"] + counts["429"]
            if counts["ok"] != min(sent, limits[key]) or counts["429"] != sent - min(sent, limits[key]):
                mismatches.append(
                    f"{key}: sent {sent}, limit {limits[key]}, accepted {counts['ok']}, 429 {counts['429']}"
                )
    # A burst of previews by one fresh token: exactly the limit accepted.
    burst_api = ctx.api("analyst", fresh=True)
    burst = [burst_api.call("POST", "/api/v1/audiences/preview", preview) for _ in range(80)]
    burst_counts = Counter(a.status for a in burst)
    burst_limit = _limit_of(burst[0])
    burst_exact = (
        burst_limit is not None
        and burst_counts.get(200, 0) == burst_limit[1]
        and burst_counts.get(429, 0) == 80 - burst_limit[1]
    )
    latency = {kind: result.latency_ms(kind) for kind in ("read", "preview", "write")}
    overall = result.latency_ms()
    passed = not errors and not mismatches and burst_exact
    return Outcome(
        done=f"{clients} clients (5 roles, a token each role) for {seconds:.0f} s on a mix of 60 % reads, 20 % "
        "previews, 20 % writes or validations; then one fresh analyst token sends 80 previews in a row.",
        expected="No 5xx; per token and rate class accepted = min(sent, limit) and the rest 429 "
        "(checked when the run fits in one 60 s window); the burst gets exactly the preview limit accepted.",
        observed=f"{len(result.answers)} requests in {result.seconds:.1f} s "
        f"({len(result.answers) / max(result.seconds, 0.1):.0f}/s); statuses {dict(sorted(statuses.items()))}; "
        f"5xx {len(errors)}; {sum(a.code == 'preview_busy' for a in result.answers)} previews refused as "
        f"preview_busy (concurrency); limit mismatches {mismatches[:3] or 'none'}; burst {dict(burst_counts)} against "
        f"limit {burst_limit[1] if burst_limit else '?'}; latency ms p50/p95/p99: all "
        f"{overall['p50']}/{overall['p95']}/{overall['p99']}, "
        + ", ".join(f"{k} {v['p50']}/{v['p95']}/{v['p99']} (n={v['n']})" for k, v in latency.items()),
        passed=passed,
        figures={
            "requests": len(result.answers),
            "rps": round(len(result.answers) / max(result.seconds, 0.1)),
            "p50_ms": overall["p50"],
            "p95_ms": overall["p95"],
            "p99_ms": overall["p99"],
            "5xx": len(errors),
        },
    )


# --- f) schemathesis over the API's schema ---------------------------------------------

FUZZ_VENV = Path(os.environ.get("RELIABILITY_FUZZ_VENV", "/work/fuzzvenv"))


@scenario("f", "Fuzz the API with schemathesis, a token per role")
def fuzz(ctx: Context) -> Outcome:
    st = FUZZ_VENV / "bin" / "schemathesis"
    if not st.exists():
        st = Path(shutil.which("schemathesis") or "")
    if not st or not st.exists():
        return Outcome(
            "schemathesis",
            "installed",
            f"not found in {FUZZ_VENV} (python3 -m venv {FUZZ_VENV} && {FUZZ_VENV}/bin/pip install schemathesis)",
            False,
        )
    examples = int(ctx.size("fuzz_examples", 5, 50))
    roles = (os.environ.get("RELIABILITY_FUZZ_ROLES") or ("developer" if ctx.bounded else ",".join(ROLES))).split(",")
    lines, failures, totals = [], 0, Counter()
    for role in roles:
        report = VAR / f"fuzz-{role}.txt"
        command = [
            str(st),
            "run",
            f"{ctx.stack.base_url}/api/schema/",
            "--header",
            f"Authorization: Bearer {ctx.token(role, fresh=True)}",
            "--header",
            "X-Forwarded-Proto: https",
            "--checks",
            "all",
            "--max-examples",
            str(examples),
            "--phases",
            os.environ.get("RELIABILITY_FUZZ_PHASES", "examples,coverage,fuzzing,stateful"),
            "--generation-deterministic",
            "--no-color",
            "--max-failures",
            "50",
        ]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=1800, check=False)
        report.write_text(done.stdout + done.stderr)
        summary = _fuzz_summary(done.stdout + done.stderr)
        totals.update(summary)
        failures += done.returncode != 0
        found = ", ".join(f"{name} {count}" for name, count in sorted(summary.items())) or "no failure"
        lines.append(f"{role}: exit {done.returncode} in {time.monotonic() - started:.0f} s — {found}")
    return Outcome(
        done=f"schemathesis over /api/schema/ with a token of each of {', '.join(roles)}: every check, "
        f"phases examples, coverage, fuzzing and stateful, {examples} examples per operation.",
        expected="Zero 5xx and zero schema violations (exit 0 for every role).",
        observed="; ".join(lines) + ". Reports: var/reliability/fuzz-<role>.txt.",
        passed=failures == 0,
        figures={
            "failures": sum(totals.values()),
            "server_errors": sum(v for k, v in totals.items() if k.startswith(("ST101", "ST102"))),
        },
    )


_FUZZ_FAILURE = re.compile(r"❌ (ST\d+) ([^:\n]+): (\d+)")


def _fuzz_summary(output: str) -> Counter[str]:
    """The summary's failure lines ("❌ ST108 Response violates schema: 2") as {code name: count}."""
    found: Counter[str] = Counter()
    for code, name, count in _FUZZ_FAILURE.findall(output):
        found[f"{code} {name.strip()}"] += int(count)
    return found


# --- g) hypothesis over the rules language and bulk payloads ---------------------------


@scenario("h", "SIGKILL a Celery worker mid-export")
def export_worker_killed(ctx: Context) -> Outcome:
    import psycopg

    operator, analyst = ctx.api("operator"), ctx.api("analyst")
    audience = new_audience(operator, f"Drill export {uuid.uuid4().hex[:6]}")
    published = operator.call("POST", f"/api/v1/audiences/{audience}/publish", {})
    if published.status != 202 or "job" not in published.body:
        return Outcome("export", "a published audience", f"publish: {published.status} {published.body}", False)
    publish_job = int(published.body["job"]["id"])
    wait_for(lambda: job_state(operator, publish_job).get("state") in TERMINAL, 60)
    versions = (operator.call("GET", f"/api/v1/audiences/{audience}/versions").body or {}).get("results") or []
    expected_rows = next((v.get("members") for v in versions if v.get("is_live")), None)
    # Hold the membership table so the export blocks after the worker claimed it and opened
    # its temporary file: the kill lands mid-export whatever the machine's speed.
    blocker = psycopg.connect(ctx.stack.postgres.url)
    blocker.execute("LOCK TABLE audiences_membership IN ACCESS EXCLUSIVE MODE")
    answer = analyst.call("POST", "/api/v1/exports", {"audience": audience, "fields": ["external_id", "email"]})
    if answer.status != 202 or "export" not in answer.body:
        blocker.close()
        return Outcome("export", "202 with an export", f"{answer.status} {answer.body}", False)
    export_id, job_id = int(answer.body["export"]["id"]), int(answer.body["export"]["job"]["id"])
    running, _ = wait_for(lambda: job_state(analyst, job_id).get("state") == "running", 30)
    time.sleep(1.0)
    ctx.stack.processes["worker"].kill()
    blocker.rollback()
    blocker.close()
    after_kill = analyst.call("GET", f"/api/v1/exports/{export_id}").body or {}
    link_after_kill = analyst.call("GET", f"/api/v1/exports/{export_id}/download")

    ctx.stack.start_worker()
    limit = ctx.size("export_recovery_seconds", 90, 90)
    final, seconds = wait_for(
        lambda: (
            (e := analyst.call("GET", f"/api/v1/exports/{export_id}").body or {}).get("state") in ("ready", "failed")
            and e
        ),
        limit,
        every=1.0,
    )
    export = final or analyst.call("GET", f"/api/v1/exports/{export_id}").body or {}
    rows = None
    if export.get("state") == "ready":
        link = analyst.call("GET", f"/api/v1/exports/{export_id}/download").body or {}
        # The link is absolute (SITE_URL); fetch its path from the drills' server.
        file = analyst.call("GET", urllib.parse.urlsplit(str(link.get("url", ""))).path)
        rows = len(str(file.body).splitlines()) - 1 if file.status == 200 else None
    offered_nothing = after_kill.get("state") != "ready" and link_after_kill.status == 409
    passed = (
        bool(running)
        and offered_nothing
        and export.get("state") == "ready"
        and rows is not None
        and rows == export.get("rows")
        and (expected_rows is None or rows == expected_rows)
    )
    return Outcome(
        done="Publish an audience of every sandbox profile, export it (CSV, email masked); SIGKILL the worker while "
        "the export's job is `running` with its temporary file open; start a new worker.",
        expected=f"Nothing is offered after the kill (no download: 409 `export_not_ready`); within {limit:.0f} s of "
        "the restart the export is taken over and finishes with every member exactly once, or fails saying why.",
        observed=(
            f"job {job_id} was {'running' if running else 'never seen running'} at the kill; after the kill the "
            f"export was `{after_kill.get('state')}` and its download answered {link_after_kill.status} "
            f"{link_after_kill.code}; at the end `{export.get('state')}` "
            + (f"{seconds} s after the restart" if final else f"still after {limit:.0f} s")
            + f", {export.get('rows')} rows, the file has {rows} (live version: {expected_rows})"
        ),
        passed=passed,
        figures={"recovery_s": seconds if final else None, "rows": rows, "state": export.get("state")},
    )


@scenario("g", "Hypothesis: the rules language and bulk payloads")
def hypothesis_properties(ctx: Context) -> Outcome:
    examples = int(ctx.size("hypothesis_examples", 60, 400))
    env = {**os.environ, "HYPOTHESIS_EXAMPLES": str(examples)}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "REQUIRE_SERVICES"):
        env.pop(name, None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/reliability/test_properties.py", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=900,
        check=False,
    )
    last = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    (VAR / "hypothesis.txt").write_text(done.stdout + done.stderr)
    return Outcome(
        done=f"pytest tests/reliability/test_properties.py: generated rules (valid and not) through the parser, "
        f"compiler and a preview; generated bulk payloads through the API; {examples} examples per property.",
        expected="Every generated input is accepted or refused with a 4xx problem naming the place; never a 500 "
        "or an exception.",
        observed=f"{last} in {time.monotonic() - started:.0f} s",
        passed=done.returncode == 0,
        figures={"examples_per_property": examples},
    )


def percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{p}": round(percentile(values, p), 1) for p in (50, 95, 99)}


def as_json(outcome: Outcome) -> str:
    return json.dumps(outcome.__dict__, default=str)


__all__ = ["SCENARIOS", "Context", "Outcome", "scenario", "signal"]
