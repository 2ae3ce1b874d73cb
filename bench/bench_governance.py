"""Benchmark: what governance costs a read and a write (issue 3).

1. **Governed read.** `GET /api/v1/profiles/{id}` with a Bearer token: authentication,
   the policy engine (role, scope, PII decision), the Redis rate limiter and its
   `RateLimit` headers, masking. Baseline: the same DRF view code path with none of it —
   an `APIView` with no authentication, permission or throttle classes that runs the same
   query and the same serializer. Both through Django's request handler in one process,
   alternating, median latency. Goal: at most 1.3x.

2. **Governed write.** `consent_sync` of one row as a developer: policy, the consent and
   ledger writes, its audit event (hash-chained, advisory lock) and its outbox event.
   Baseline: the same call with the audit event and the outbox write switched off.
   Alternating, median latency. Goal: at most 1.5x.

Database: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/marketerapi_bench),
in an environment of its own (`bench-governance`); Redis: BENCH_REDIS_URL (default
redis://127.0.0.1:6379/13) for the rate limiter and the cache.

    python bench/bench_governance.py       # prints the rows
    main() -> list[dict]                   # for bench/run.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import MARKER, database_url, ensure_database, run_child  # noqa: E402

CALLS = int(os.environ.get("BENCH_GOVERNANCE_CALLS", "1000"))
GOAL_READ = 1.3
GOAL_WRITE = 1.5


def _bare_view() -> Any:
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from audiences.api.profiles import ProfileSerializer
    from audiences.models import Profile

    class BareProfile(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]
        throttle_classes: list = []

        def get(self, request: Any, profile_id: int) -> Response:
            profile = Profile.objects.prefetch_related("consents").get(pk=profile_id)
            return Response(ProfileSerializer(profile, context={"reveal_pii": False}).data)

    return BareProfile


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _read(environment: Any, calls: int) -> dict[str, float]:
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.urls import clear_url_caches, path

    import bench.urls
    from audiences.models import Profile
    from governance.models import ApiToken, hash_token

    profile, _ = Profile.objects.get_or_create(
        environment=environment, external_id="bench-gov-1", defaults={"email": "ann@example.test", "region": "EU"}
    )
    bench.urls.urlpatterns.append(path("bench/drf-profile/<int:profile_id>", _bare_view().as_view()))
    settings.ROOT_URLCONF = "bench.urls"
    clear_url_caches()
    user, _ = User.objects.get_or_create(username="bench-governance")
    user.groups.add(Group.objects.get(name="developer"))
    secret = ApiToken.generate_secret(environment)
    ApiToken.objects.create(
        environment=environment,
        user=user,
        owner=user,
        name="bench_governance",
        prefix=secret[:20],
        key_hash=hash_token(secret),
        scopes=["read"],
        # Far above what the loop sends: the limiter still runs its script, never refuses.
        rate_limits={"read": 10_000_000},
        expires_at=ApiToken.default_expiry(),
    )
    client = Client(HTTP_HOST="127.0.0.1")
    governed_url, bare_url = f"/api/v1/profiles/{profile.pk}", f"/bench/drf-profile/{profile.pk}"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}

    def governed() -> None:
        response = client.get(governed_url, **auth)
        assert response.status_code == 200 and "RateLimit" in response, response.content[:200]

    def bare() -> None:
        assert client.get(bare_url).status_code == 200

    for _ in range(30):
        governed()
        bare()
    ours, base = [], []
    for _ in range(calls):
        ours.append(_timed(governed))
        base.append(_timed(bare))
    return {"ours": statistics.median(ours) * 1000, "baseline": statistics.median(base) * 1000}


def _write(environment: Any, calls: int) -> dict[str, float]:
    from datetime import UTC, datetime, timedelta

    from django.contrib.auth.models import User

    from audiences.models import Consent, Profile
    from audiences.profiles import services
    from governance import outbox
    from governance.actors import Actor
    from governance.audit import trail as audit
    from integrations.outbox import relay

    profile, _ = Profile.objects.get_or_create(environment=environment, external_id="bench-gov-write")
    actor = Actor(user=User.objects.get(username="bench-governance"), environment=environment, door="api")
    stored = Consent.objects.filter(profile=profile).order_by("-captured_at").values_list("captured_at", flat=True)
    clock = [max([datetime.now(UTC), *stored[:1]])]

    def call() -> None:
        clock[0] += timedelta(seconds=1)
        update = {
            "external_id": profile.external_id,
            "channel": "email",
            "status": "granted" if int(clock[0].timestamp()) % 2 else "denied",
            "source": "bench",
            "captured_at": clock[0],
        }
        assert services.consent_sync(actor=actor, updates=[update]).updated == 1

    real_record, real_emit_many, real_kick = audit.record, outbox.emit_many, relay.kick_relay
    relay.kick_relay = lambda: None  # no broker round trip in either arm

    def governed() -> None:
        audit.record, outbox.emit_many = real_record, real_emit_many
        call()

    def bare() -> None:
        audit.record = lambda *a, **k: None
        outbox.emit_many = lambda event_type, env, items: len(list(items))
        call()

    try:
        for _ in range(20):
            governed()
            bare()
        ours, base = [], []
        for _ in range(calls):
            ours.append(_timed(governed))
            base.append(_timed(bare))
    finally:
        audit.record, outbox.emit_many, relay.kick_relay = real_record, real_emit_many, real_kick
    return {"ours": statistics.median(ours) * 1000, "baseline": statistics.median(base) * 1000}


def measure(calls: int) -> list[dict[str, Any]]:
    import django

    django.setup()
    from django.core.management import call_command

    from governance.models import Environment

    call_command("migrate", verbosity=0, interactive=False)
    environment, _ = Environment.objects.get_or_create(
        slug="bench-governance",
        defaults={"name": "Benchmark: governance", "data_kind": "synthetic", "purpose": "bench/bench_governance.py"},
    )
    read = _read(environment, calls)
    write = _write(environment, calls)
    return [
        {
            "name": "Governed read: GET /api/v1/profiles/{id} vs the same DRF view without governance, median",
            "ours": round(read["ours"], 3),
            "baseline": round(read["baseline"], 3),
            "unit": "ms",
            "ratio": round(read["ours"] / read["baseline"], 3),
            "goal": f"≤ {GOAL_READ}",
            "notes": f"token auth, policy, Redis rate limit + headers, masking; in-process, {calls} alternating calls",
        },
        {
            "name": "Governed write: consent_sync of 1 row with vs without its audit event and outbox row, median",
            "ours": round(write["ours"], 3),
            "baseline": round(write["baseline"], 3),
            "unit": "ms",
            "ratio": round(write["ours"] / write["baseline"], 3),
            "goal": f"≤ {GOAL_WRITE}",
            "notes": f"hash-chained audit row under its advisory lock, outbox row; {calls} alternating calls",
        },
    ]


def main() -> list[dict[str, Any]]:
    url = database_url()
    ensure_database(url)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "DATABASE_URL": url,
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        "CELERY_BROKER_URL": "",
    }
    return run_child(__file__, env)


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(MARKER + json.dumps(measure(CALLS)), flush=True)
    else:
        for row in main():
            print(json.dumps(row))
