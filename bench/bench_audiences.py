"""Benchmark: audience preview, publish and membership pages on 1,000,000 sandbox profiles.

Three comparisons on PostgreSQL, ours and a hand-written baseline measured alternately in the
same run (medians), so the ratio holds on any machine; the absolute medians describe this one.

1. Preview — count, reach waterfall, breakdowns (region, lifecycle stage, consent) and a
   sample of a rule with region, lifecycle stage, consent and a 7-day event condition:
   the real service (`audience_selectors.audience_preview`: rules check, restrictions, one
   grouped pass with a conditional count per waterfall step, and the sample) against
   hand-written SQL computing the same numbers the way an engineer would: one pass with a
   materialized CTE and GROUPING SETS, plus the sample. The service runs its statements
   with JIT off and 64 MB of work_mem (audiences/reach.py); the baseline gets the same
   settings, so the ratio compares the queries, not the configuration. The baseline with
   PostgreSQL's defaults is measured too and named in the notes. Goal ≤ 1.5x.
2. Publish — a ~500,000-member audience, end to end: `audience_publish` (policy, quota,
   job, version, audit) and its job (INSERT … SELECT of the members, waterfall counts,
   diff, the swap with its audit and outbox rows, retention), each transaction committed,
   against a raw `INSERT … SELECT` of the same members committed in one transaction.
   Goal ≤ 1.5x. A second row republishes over a live version of the same size (the diff
   against it included), informational.
3. Memberships — `GET /api/v1/audiences/{id}/memberships` page 1 against page 1,000
   (cursor), through the API in-process (token, policy, masking). Goal ≤ 1.5x.

Data: the environment `bench-audiences` (synthetic), loaded once with `sandbox_reset`
(1,000,000 profiles, seed 42; about six minutes) and reused while it holds them, plus a
suppression list of 10,000 entries (half by external id, half by email hash) so the
suppression step has work to do. Each query shape's plan is printed (EXPLAIN) with the rows.

    python bench/run.py bench_audiences        # or: make bench
    python bench/bench_audiences.py             # prints the rows and the plans
"""

from __future__ import annotations

import argparse
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

from bench.common import MARKER, run_child, synthetic_environment  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/marketerapi_bench"
GOAL = 1.5
PROFILES = 1_000_000
SEED = 42
ENVIRONMENT = "bench-audiences"
SUPPRESSED = 10_000
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PAGE_RUNS = int(os.environ.get("BENCH_PAGE_RUNS", "40"))

PREVIEW_RULES = {
    "all": [
        {"attr": "region", "op": "in", "value": ["EU", "UK", "NA"]},
        {"consent": "email", "is": True},
        {
            "any": [
                {"attr": "lifecycle_stage", "op": "eq", "value": "customer"},
                {"event": "cart_abandoned", "within_days": 7, "min_count": 1},
            ]
        },
    ]
}
PUBLISH_RULES = {
    "all": [
        {"attr": "region", "op": "in", "value": ["EU", "NA", "UK", "APAC", "LATAM"]},
        {"attr": "lifecycle_stage", "op": "not_in", "value": ["churned"]},
        {"consent": "email", "is": True},
    ]
}


def main(verbose: bool = False) -> list[dict[str, Any]]:
    """Run the benchmark in a child process (its own Django settings) and return its rows;
    `verbose` also prints the query plans the child writes to stderr."""
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "marketerapi.settings",
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-only-secret-key-" + "x" * 40,
        "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CELERY_BROKER_URL", None)  # publish jobs run in-process, right after commit
    return run_child(__file__, env, verbose=verbose)


# --- the child ------------------------------------------------------------------------------


def _timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _plan(sql: str, params: Any, *, analyze: bool = True, rollback: bool = False) -> list[str]:
    """EXPLAIN of a query shape (ANALYZE inside a rolled-back transaction for writes)."""
    from django.db import connection, transaction

    lines: list[str] = []
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
                cursor.execute("SET LOCAL work_mem = '64MB'")
                cursor.execute(("EXPLAIN (ANALYZE, COSTS OFF) " if analyze else "EXPLAIN (COSTS OFF) ") + sql, params)
                lines = [row[0] for row in cursor.fetchall()]
            if rollback:
                raise _Rollback
    except _Rollback:
        pass
    return lines


class _Rollback(Exception):
    pass


def _setup() -> dict[str, Any]:
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from audiences.models import Profile, SuppressionEntry, SuppressionList
    from governance.actors import Actor
    from governance.models import ApiToken, Door, QuotaPolicy, hash_token

    environment, load_note = synthetic_environment(
        ENVIRONMENT, name="Bench audiences", purpose="Loaded by bench/bench_audiences.py.", profiles=PROFILES, seed=SEED
    )

    listed, _ = SuppressionList.objects.get_or_create(environment=environment, name="bench complaints")
    if not SuppressionEntry.objects.filter(suppression_list=listed).exists():
        # Every 100th profile: half listed by external id, half by email hash.
        picked = list(
            Profile.objects.filter(environment=environment, email__isnull=False)
            .order_by("pk")
            .values_list("external_id", "email_hash")[:: PROFILES // SUPPRESSED][:SUPPRESSED]
        )
        with transaction.atomic():
            SuppressionEntry.objects.bulk_create(
                [
                    SuppressionEntry(suppression_list=listed, external_id=ext)
                    if i % 2
                    else SuppressionEntry(suppression_list=listed, email_hash=digest)
                    for i, (ext, digest) in enumerate(picked)
                ],
                batch_size=2000,
            )

    user, _ = User.objects.get_or_create(username="bench-operator")
    user.groups.add(
        Group.objects.get_or_create(name="campaign_operator")[0], Group.objects.get_or_create(name="growth")[0]
    )
    QuotaPolicy.objects.get_or_create(
        name="publish",
        user=user,
        defaults={"action": "audience.publish", "period": "day", "limit": 1_000_000, "description": "bench"},
    )
    analyst, _ = User.objects.get_or_create(username="bench-analyst")
    analyst.groups.add(Group.objects.get_or_create(name="analyst")[0])
    secret = ApiToken.generate_secret(environment)
    ApiToken.objects.create(
        environment=environment,
        user=analyst,
        owner=analyst,
        scopes=["read"],
        name="bench",
        prefix=secret[:20],
        key_hash=hash_token(secret),
        expires_at=ApiToken.default_expiry(),
    )
    with connection.cursor() as cursor:
        for table in ("audiences_profile", "audiences_consent", "audiences_profileevent", "audiences_suppressionentry"):
            cursor.execute(f"ANALYZE {table}")
    return {
        "environment": environment,
        "user": user,
        "actor": Actor(user=user, environment=environment, door=Door.API, request_id="bench"),
        "token": secret,
        "load_note": load_note,
        "profiles": Profile.objects.filter(environment=environment).count(),
    }


# --- 1. preview -------------------------------------------------------------------------------

HAND_PREVIEW = """
WITH m AS MATERIALIZED (
    SELECT p.id, p.region, p.lifecycle_stage, COALESCE(c.status, 'unknown') AS consent,
           p.email > '' AS addressed,
           c.status IS NOT DISTINCT FROM 'granted' AS consented,
           EXISTS (SELECT 1 FROM audiences_suppressionentry s JOIN audiences_suppressionlist l
                   ON l.id = s.suppression_list_id
                   WHERE l.environment_id = %(env)s AND s.external_id = p.external_id)
        OR EXISTS (SELECT 1 FROM audiences_suppressionentry s JOIN audiences_suppressionlist l
                   ON l.id = s.suppression_list_id
                   WHERE l.environment_id = %(env)s AND s.email_hash = p.email_hash) AS suppressed
    FROM audiences_profile p
    LEFT JOIN audiences_consent c ON c.profile_id = p.id AND c.channel = 'email'
    WHERE p.environment_id = %(env)s
      AND p.region IN ('EU', 'UK', 'NA')
      AND c.status = 'granted'
      AND (p.lifecycle_stage = 'customer'
           OR EXISTS (SELECT 1 FROM audiences_profileevent e
                      WHERE e.profile_id = p.id AND e.type = 'cart_abandoned' AND e.occurred_at >= %(since)s))
)
SELECT GROUPING(region, lifecycle_stage, consent) AS g, region, lifecycle_stage, consent,
       count(*) AS matching,
       count(*) FILTER (WHERE addressed AND consented) AS consented,
       count(*) FILTER (WHERE addressed AND consented AND NOT suppressed) AS reachable
FROM m
GROUP BY GROUPING SETS ((), (region), (lifecycle_stage), (consent))
"""
HAND_SAMPLE = """
SELECT p.id, p.external_id, p.email, p.phone, p.first_name, p.last_name, p.locale, p.country, p.region,
       p.lifecycle_stage
FROM audiences_profile p
WHERE p.environment_id = %(env)s AND p.region IN ('EU', 'UK', 'NA') AND p.email > ''
  AND EXISTS (SELECT 1 FROM audiences_consent c WHERE c.profile_id = p.id AND c.channel = 'email'
              AND c.status = 'granted')
  AND (p.lifecycle_stage = 'customer'
       OR EXISTS (SELECT 1 FROM audiences_profileevent e
                  WHERE e.profile_id = p.id AND e.type = 'cart_abandoned' AND e.occurred_at >= %(since)s))
  AND NOT EXISTS (SELECT 1 FROM audiences_suppressionentry s JOIN audiences_suppressionlist l
                  ON l.id = s.suppression_list_id WHERE l.environment_id = %(env)s AND s.external_id = p.external_id)
  AND NOT EXISTS (SELECT 1 FROM audiences_suppressionentry s JOIN audiences_suppressionlist l
                  ON l.id = s.suppression_list_id WHERE l.environment_id = %(env)s AND s.email_hash = p.email_hash)
ORDER BY p.id LIMIT 10
"""


def _hand_preview(environment_id: int, *, tuned: bool = True) -> dict[str, Any]:
    """The hand-written preview; `tuned`: in a transaction with the service's settings
    (audiences.reach.ANALYTIC_SETTINGS: JIT off, more work_mem), else PostgreSQL's defaults."""
    from datetime import timedelta

    from django.db import connection, transaction
    from django.utils import timezone

    from audiences.reach import ANALYTIC_SETTINGS

    params = {"env": environment_id, "since": timezone.now() - timedelta(days=7)}
    with transaction.atomic(), connection.cursor() as cursor:
        if tuned:
            calls = ", ".join("set_config(%s, %s, true)" for _ in ANALYTIC_SETTINGS)
            cursor.execute(f"SELECT {calls}", [part for item in ANALYTIC_SETTINGS.items() for part in item])
        cursor.execute(HAND_PREVIEW, params)
        rows = cursor.fetchall()
        cursor.execute(HAND_SAMPLE, params)
        sample = cursor.fetchall()
    total = next(r for r in rows if r[0] == 7)
    return {"count": total[4], "reachable": total[6], "rows": rows, "sample": [r[0] for r in sample]}


def bench_preview(ctx: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audiences.definitions.selectors import audience_preview

    actor, environment = ctx["actor"], ctx["environment"]

    def ours() -> dict[str, Any]:
        return audience_preview(actor=actor, rules=PREVIEW_RULES, channel="email")

    result = ours()  # warm the caches both sides use
    hand = _hand_preview(environment.pk)
    # "Within 7 days" slides with the clock between the two runs: a profile or two may cross it.
    drift = max(abs(result["count"] - hand["count"]), abs(result["reachable"] - hand["reachable"]))
    if drift > 10:
        raise SystemExit(
            f"preview disagrees with the hand-written SQL: {result['count']}/{result['reachable']} vs {hand}"
        )
    if drift == 0 and [p.pk for p in result["sample"]] != hand["sample"]:
        raise SystemExit("the preview's sample differs from the hand-written one")
    ours_times, hand_times, default_times = [], [], []
    for _ in range(RUNS):
        ours_times.append(_timed(ours))
        hand_times.append(_timed(lambda: _hand_preview(environment.pk)))
        default_times.append(_timed(lambda: _hand_preview(environment.pk, tuned=False)))
    with CaptureQueriesContext(connection) as captured:
        ours()
    statements = [q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    plans = [f"-- preview: {len(statements)} statements; the grouped pass (count, waterfall, breakdowns):"]
    waterfall = next(sql for sql in statements if "GROUP BY" in sql)
    plans += _plan(waterfall, None)
    plans += ["-- hand-written preview (one pass):"]
    from datetime import timedelta

    from django.utils import timezone

    plans += _plan(HAND_PREVIEW, {"env": environment.pk, "since": timezone.now() - timedelta(days=7)})
    ratio = _median(ours_times) / _median(hand_times)
    from audiences.reach import ANALYTIC_SETTINGS

    settings = ", ".join(f"{name} {value}" for name, value in ANALYTIC_SETTINGS.items())
    return [
        {
            "name": "Audience preview (count, waterfall, breakdowns, sample), 1M profiles",
            "ours": round(_median(ours_times), 3),
            "baseline": round(_median(hand_times), 3),
            "unit": "s (median)",
            "ratio": round(ratio, 2),
            "goal": f"≤ {GOAL}",
            "notes": f"rule: region in EU/UK/NA, email consent, lifecycle customer OR cart_abandoned within 7 days; "
            f"{result['count']:,} match, {result['reachable']:,} reachable; ours = audience_preview service "
            f"({len(statements)} statements: restrictions, settings, one grouped pass with a count per waterfall "
            f"step, the sample), baseline = one materialized CTE with GROUPING SETS + the sample query, with the "
            f"same settings ({settings}; with PostgreSQL's defaults it took {_median(default_times):.3f} s); "
            f"{RUNS} runs each, alternating; {ctx['load_note']}",
        }
    ], plans


# --- 2. publish -----------------------------------------------------------------------------------

HAND_INSERT = """
INSERT INTO audiences_membership (version_id, profile_id)
SELECT %(version)s, p.id FROM audiences_profile p
WHERE p.environment_id = %(env)s AND p.region IN ('EU', 'NA', 'UK', 'APAC', 'LATAM')
  AND (p.lifecycle_stage IS NULL OR p.lifecycle_stage <> 'churned') AND p.email > ''
  AND EXISTS (SELECT 1 FROM audiences_consent c WHERE c.profile_id = p.id AND c.channel = 'email'
              AND c.status = 'granted')
  AND NOT EXISTS (SELECT 1 FROM audiences_suppressionentry s JOIN audiences_suppressionlist l
                  ON l.id = s.suppression_list_id WHERE l.environment_id = %(env)s AND s.external_id = p.external_id)
  AND NOT EXISTS (SELECT 1 FROM audiences_suppressionentry s JOIN audiences_suppressionlist l
                  ON l.id = s.suppression_list_id WHERE l.environment_id = %(env)s AND s.email_hash = p.email_hash)
"""


def _fresh_audience(ctx: dict[str, Any], name: str) -> Any:
    """The bench's publish audience with no versions (outside the timing)."""
    from django.contrib.auth.models import Group
    from django.db import connection

    from audiences.models import Audience

    audience, _ = Audience.objects.get_or_create(
        environment=ctx["environment"],
        name=name,
        defaults={
            "owner_team": Group.objects.get(name="growth"),
            "channel": "email",
            "purpose": "benchmark",
            "description": "A ~500,000-member audience for bench/bench_audiences.py.",
            "rules": PUBLISH_RULES,
        },
    )
    _drop_versions(audience.pk)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM audiences_membership")
    return Audience.objects.select_related("environment", "owner_team", "live_version").get(pk=audience.pk)


def _drop_versions(audience_id: int) -> None:
    from django.db import connection, transaction

    from audiences.models import Audience, AudienceVersion

    with transaction.atomic():
        audience = Audience.objects.select_for_update().get(pk=audience_id)
        audience.live_version = None
        audience.state = "draft"
        audience.save(update_fields=["live_version", "state"])
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM audiences_membership WHERE version_id IN "
                "(SELECT id FROM audiences_audienceversion WHERE audience_id = %s)",
                [audience_id],
            )
        AudienceVersion.objects.filter(audience_id=audience_id).delete()


def _hand_publish(ctx: dict[str, Any], scratch: Any) -> tuple[float, int]:
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(HAND_INSERT, {"version": scratch.pk, "env": ctx["environment"].pk})
        count = cursor.rowcount
    return time.perf_counter() - started, count


def bench_publish(ctx: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], Any]:
    from django.db import connection

    from audiences.models import AudienceVersion, Membership
    from audiences.publishing.services import audience_publish
    from audiences.reach import reachable_queryset
    from integrations.models import Destination, Job

    if Destination.objects.filter(environment=ctx["environment"], is_active=True).exists():
        raise SystemExit(f"{ENVIRONMENT} has active destinations; the benchmark measures publishing without them")
    actor = ctx["actor"]
    scratch_audience = _fresh_audience(ctx, "bench scratch (hand-written insert)")
    scratch = AudienceVersion.objects.create(
        audience=scratch_audience, number=1, rules=PUBLISH_RULES, channel="email", state="failed"
    )

    def ours(audience: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        outcome = audience_publish(actor=actor, audience=audience)  # the job runs after commit (eager)
        elapsed = time.perf_counter() - started
        job = Job.objects.get(pk=outcome.result.job.pk)
        if job.state != "succeeded":
            raise SystemExit(f"publish job ended {job.state}: {job.errors}")
        return elapsed, outcome.result.version

    first_times, again_times, hand_times = [], [], []
    members = 0
    audience = None
    for _ in range(RUNS):
        audience = _fresh_audience(ctx, "bench publish ~500k")
        elapsed, version = ours(audience)
        first_times.append(elapsed)
        version.refresh_from_db()
        members = version.members
        # republish over the live version just built: the diff against it is part of the work
        elapsed, _ = ours(type(audience).objects.select_related("live_version", "environment").get(pk=audience.pk))
        again_times.append(elapsed)

        Membership.objects.filter(version=scratch).delete()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM audiences_membership")
        elapsed, count = _hand_publish(ctx, scratch)
        hand_times.append(elapsed)
        if count != members:
            raise SystemExit(f"the hand-written insert made {count:,} members, publish {members:,}")

    # Plans of the shapes the job runs (the republish's: the overlap count against a live version).
    from django.utils import timezone

    live = type(audience).objects.get(pk=audience.pk).live_version
    query = reachable_queryset(ctx["environment"], PUBLISH_RULES, "email", now=timezone.now(), live_versions={})
    sql, params = query.order_by().values("pk").query.sql_with_params()
    plans = ["-- publish: the members' SELECT (of INSERT … SELECT):"]
    plans += _plan(sql, params)
    plans += ["-- publish: the overlap with the live version (diff sizes):"]
    previous = AudienceVersion.objects.filter(audience=audience).exclude(pk=live.pk).order_by("-number").first()
    from django.db.models import Exists, OuterRef

    overlap = Membership.objects.filter(version_id=live.pk).filter(
        Exists(Membership.objects.filter(version_id=previous.pk if previous else 0, profile_id=OuterRef("profile_id")))
    )
    osql, oparams = overlap.values("profile_id").query.sql_with_params()
    plans += _plan(f"SELECT count(*) FROM ({osql}) o", oparams)
    _drop_versions(scratch_audience.pk)

    first, again, hand = _median(first_times), _median(again_times), _median(hand_times)
    common = f"{RUNS} runs each, alternating; each run's transactions committed; no destination connected"
    rows = [
        {
            "name": f"Publish a {members:,}-member audience vs raw INSERT … SELECT",
            "ours": round(first, 2),
            "baseline": round(hand, 2),
            "unit": "s (median)",
            "ratio": round(first / hand, 2),
            "goal": f"≤ {GOAL}",
            "notes": "ours = audience_publish + its job end to end (policy, quota, job, version, INSERT … SELECT of "
            "the members, waterfall counts, swap with audit + outbox, retention); baseline = one hand-written "
            f"INSERT … SELECT of the same members into a scratch version; {common}",
        },
        {
            "name": f"Republish it over a live version of {members:,} members (diff included)",
            "ours": round(again, 2),
            "baseline": round(hand, 2),
            "unit": "s (median)",
            "ratio": round(again / hand, 2),
            "goal": "informational",
            "notes": "as above, plus the overlap with the live version (a semi-join over the composite key) "
            f"for the added/removed sizes; {common}",
        },
    ]
    return rows, plans, audience


# --- 3. memberships pages --------------------------------------------------------------------------


def bench_memberships(ctx: dict[str, Any], audience: Any) -> tuple[list[dict[str, Any]], list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from audiences.publishing.pagination import members_cursor

    audience = type(audience).objects.select_related("live_version").get(pk=audience.pk)
    version = audience.live_version
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT profile_id FROM audiences_membership WHERE version_id = %s ORDER BY profile_id OFFSET %s LIMIT 1",
            [version.pk, 999 * 100 - 1],
        )
        after = cursor.fetchone()[0]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ctx['token']}")
    base = f"/api/v1/audiences/{audience.pk}/memberships"
    first_url = base + "?limit=100"
    deep_url = base + f"?cursor={members_cursor(version.pk, after)}&limit=100"

    def get(url: str) -> float:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or len(response.json()["results"]) != 100:
            raise SystemExit(f"{url}: {response.status_code} {response.content[:300]!r}")
        return elapsed

    for url in (first_url, deep_url):
        get(url)
    firsts, deeps = [], []
    for _ in range(PAGE_RUNS):
        firsts.append(get(first_url))
        deeps.append(get(deep_url))
    first, deep = _median(firsts), _median(deeps)
    with CaptureQueriesContext(connection) as captured:
        get(deep_url)
    page_sql = next(q["sql"] for q in captured.captured_queries if "audiences_membership" in q["sql"])
    plans = ["-- memberships: page 1,000 (cursor), the query the API ran:", page_sql]
    plans += _plan(page_sql, None)
    return [
        {
            "name": "Memberships: page 1,000 (cursor) vs page 1, 100 members a page",
            "ours": round(deep * 1000, 2),
            "baseline": round(first * 1000, 2),
            "unit": "ms (median)",
            "ratio": round(deep / first, 2),
            "goal": f"≤ {GOAL}",
            "notes": f"GET /api/v1/audiences/{{id}}/memberships through the API in-process (analyst token, policy, "
            f"masking) on a live version of {version.members:,} members; page 1,000 starts after member 99,900; "
            f"{PAGE_RUNS} requests each, alternating",
        }
    ], plans


def child() -> list[dict[str, Any]]:
    from bench.common import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("bench_audiences needs PostgreSQL (BENCH_DATABASE_URL)")
    call_command("migrate", interactive=False, verbosity=0)
    ctx = _setup()
    rows: list[dict[str, Any]] = []
    plans: list[str] = []
    more, shapes = bench_preview(ctx)
    rows += more
    plans += shapes
    more, shapes, audience = bench_publish(ctx)
    rows += more
    plans += shapes
    more, shapes = bench_memberships(ctx, audience)
    rows += more
    plans += shapes
    print("\n".join(plans), file=sys.stderr, flush=True)
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(
            f"{row['name']}: ours {row['ours']:,} {row['unit']}, baseline {row['baseline']:,} {row['unit']}, "
            f"ratio {row['ratio']} (goal {row['goal']})\n    {row['notes']}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(MARKER + json.dumps(child()), flush=True)
    else:
        _print(main(verbose=True))
