"""Idempotency-Key: replay, reuse with another body, in flight, key validation, expiry,
and one unit of work under 50 concurrent duplicates (governance/limits/idempotency.py)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.urls import re_path
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from governance import policy
from governance.actors import actor_from_request
from governance.audit import trail as audit
from governance.limits import idempotency
from governance.limits.idempotency import idempotent
from governance.models import ApiToken, AuditEvent, Environment, IdempotencyRecord, IdempotencyState
from marketerapi.problems import InvalidInput
from tests.conftest import issue_test_token, require_service

WORK = "test.idempotent_work"
factory = APIRequestFactory()


class Work(APIView):
    """One unit of work per run: an audit event. The body steers it: {"fail": true} refuses,
    {"deny": true} asks the policy engine for something analysts may not do, {"wait": s}
    holds the transaction open, {"gate": true} waits for `Work.gate`."""

    gate: threading.Event | None = None

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: OpenApiTypes.OBJECT})
    @idempotent
    def post(self, request):
        actor = actor_from_request(request)
        data = request.data
        if data.get("fail"):
            raise InvalidInput("The request is not valid.")
        if data.get("deny"):
            policy.require(actor, "token.create")
        if data.get("gate") and Work.gate is not None:
            Work.gate.wait(timeout=10)
        with transaction.atomic():
            event = audit.record(actor, WORK, ("test.work", "1", "work"))
        if data.get("wait"):
            time.sleep(float(data["wait"]))
        return Response(
            {"event": event.pk, "echo": data.get("echo"), "at": timezone.now()},
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/api/v1/work/{event.pk}"},
        )


view = Work.as_view()


def post(secret: str | None, body: dict, key: str | None = None, path: str = "/api/v1/work", user=None):
    headers = {}
    if secret:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    request = factory.post(path, body, format="json", **headers)
    if user is not None:
        request.session = {}  # a portal session in the default environment
        force_authenticate(request, user=user)
    return view(request)


@pytest.fixture
def secret(persona, sandbox) -> str:
    return issue_test_token(persona("developer"), sandbox)


def runs() -> int:
    return AuditEvent.objects.filter(action=WORK).count()


# --- replay, reuse, validation ---------------------------------------------------------------


def test_the_same_key_and_body_replays_the_first_response(secret):
    first = post(secret, {"echo": "a"}, key="order-1")
    second = post(secret, {"echo": "a"}, key="order-1")

    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert second.data == {**first.data, "at": first.data["at"].isoformat().replace("+00:00", "Z")}
    assert second["Location"] == first["Location"]
    assert runs() == 1
    record = IdempotencyRecord.objects.get()
    assert record.state == IdempotencyState.COMPLETED and record.status_code == 201
    token = ApiToken.objects.get()
    assert record.owner == f"user:{token.user_id}:env:{token.environment_id}" and record.path == "/api/v1/work"
    assert timedelta(hours=23, minutes=59) < record.expires_at - record.created_at <= timedelta(hours=24)


def test_without_a_key_every_request_runs(secret):
    post(secret, {"echo": "a"})
    post(secret, {"echo": "a"})

    assert runs() == 2 and not IdempotencyRecord.objects.exists()


def test_the_same_key_with_another_body_is_a_422(secret):
    post(secret, {"echo": "a"}, key="order-1")

    response = post(secret, {"echo": "b"}, key="order-1")

    assert response.status_code == 422
    assert response.data["code"] == "idempotency_key_reused"
    assert "new Idempotency-Key" in response.data["hint"] and "POST /api/v1/work" in response.data["detail"]
    assert runs() == 1


def test_the_same_key_on_another_path_is_a_422_but_a_trailing_slash_is_the_same_path(secret):
    post(secret, {"echo": "a"}, key="k")

    assert post(secret, {"echo": "a"}, key="k", path="/api/v1/work/").status_code == 201
    assert post(secret, {"echo": "a"}, key="k", path="/api/v1/other").status_code == 422
    assert runs() == 1


@pytest.mark.parametrize("key", ["x" * 256, "", "has space", "naïve"])
def test_invalid_keys_are_a_400(secret, key):
    response = post(secret, {"echo": "a"}, key=key)

    assert response.status_code == 400 and response.data["code"] == "idempotency_key_invalid"
    assert response.data["hint"] and runs() == 0


def test_a_key_of_255_characters_is_fine(secret):
    assert post(secret, {"echo": "a"}, key="k" * 255).status_code == 201


def test_a_refused_request_does_not_spend_its_key(secret):
    refused = post(secret, {"fail": True}, key="order-1")

    corrected = post(secret, {"echo": "fixed"}, key="order-1")

    assert refused.status_code == 422 and refused.data["code"] == "invalid_input"
    assert corrected.status_code == 201 and not corrected.has_header("Idempotent-Replayed")
    assert runs() == 1


def test_keys_belong_to_their_owner(secret, persona, sandbox):
    other = issue_test_token(persona("admin"), sandbox)

    post(secret, {"echo": "a"}, key="shared")
    response = post(other, {"echo": "b"}, key="shared")

    assert response.status_code == 201 and not response.has_header("Idempotent-Replayed")
    assert runs() == 2


def test_a_second_token_of_the_same_person_replays_instead_of_working_twice(persona, sandbox, pilot):
    """Issue 12: the same key from a second token of the same user created a second job."""
    user = persona("developer")
    first, second = issue_test_token(user, sandbox), issue_test_token(user, sandbox)

    post(first, {"echo": "a"}, key="retry-1")
    replayed = post(second, {"echo": "a"}, key="retry-1")

    assert replayed["Idempotent-Replayed"] == "true" and runs() == 1
    elsewhere = post(issue_test_token(user, pilot), {"echo": "a"}, key="retry-1")
    assert not elsewhere.has_header("Idempotent-Replayed") and runs() == 2


def test_a_portal_session_keys_by_user(persona):
    user = persona("developer")

    post(None, {"echo": "a"}, key="s-1", user=user)
    replayed = post(None, {"echo": "a"}, key="s-1", user=user)

    assert replayed["Idempotent-Replayed"] == "true"
    assert IdempotencyRecord.objects.get().owner == f"user:{user.pk}:env:{Environment.objects.get(slug='sandbox').pk}"


def test_an_expired_key_runs_again(secret):
    post(secret, {"echo": "a"}, key="old")
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    again = post(secret, {"echo": "b"}, key="old")

    assert again.status_code == 201 and not again.has_header("Idempotent-Replayed")
    assert runs() == 2 and IdempotencyRecord.objects.get().expires_at > timezone.now()


def test_purge_deletes_expired_records_only(secret):
    for index in range(5):
        post(secret, {"echo": index}, key=f"k{index}")
    IdempotencyRecord.objects.filter(key__in=["k0", "k1", "k2"]).update(expires_at=timezone.now())

    deleted = idempotency.purge_expired(batch_size=2)

    assert deleted == 3 and set(IdempotencyRecord.objects.values_list("key", flat=True)) == {"k3", "k4"}


def test_the_purge_task_is_in_the_beat_schedule():
    from django.conf import settings

    from governance.tasks import idempotency_purge_task

    entry = settings.CELERY_BEAT_SCHEDULE["governance.idempotency_purge"]
    assert entry["task"] == idempotency_purge_task.name == "governance.idempotency_purge"


def test_a_policy_refusal_inside_the_claim_is_still_audited_once(persona, sandbox):
    analyst = issue_test_token(persona("analyst"), sandbox)

    response = post(analyst, {"deny": True}, key="d-1")

    assert response.status_code == 403 and response.data["code"] == "permission_denied"
    assert AuditEvent.objects.filter(action="token.create", outcome="denied").count() == 1
    assert not IdempotencyRecord.objects.exists() and runs() == 0


def test_the_header_is_documented_on_idempotent_operations(db):
    schema = SchemaGenerator(patterns=[re_path(r"^api/v1/work/?$", view)]).get_schema(request=None, public=True)

    operation = schema["paths"]["/api/v1/work/"]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and not header.get("required") and "24 hours" in header["description"]
    assert "201" in operation["responses"]  # the view's own @extend_schema is kept


# --- concurrency (PostgreSQL) -------------------------------------------------------------------


@pytest.fixture
def postgres(django_db_serialized_rollback, transactional_db):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "concurrent transactions need PostgreSQL; set DATABASE_URL")


def _in_thread(
    outcomes: list, lock: threading.Lock, *args, barrier: threading.Barrier | None = None, delay: float = 0, **kwargs
):
    from django.db import connection as own

    try:
        if barrier is not None:
            barrier.wait()
        time.sleep(delay)
        response = post(*args, **kwargs)
        outcome = (response.status_code, response.has_header("Idempotent-Replayed"), response.data)
    except Exception as exc:  # pragma: no cover - reported by the assertions
        outcome = (0, False, repr(exc))
    finally:
        own.close()
    with lock:
        outcomes.append(outcome)


@pytest.mark.services
def test_50_concurrent_posts_with_one_key_do_one_unit_of_work(postgres, secret):
    outcomes: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)
    # All released at once, spread over 0.4 s against work that holds its transaction 0.1 s:
    # the first claims the key, those during its work get 409, those after it a replay.
    threads = [
        threading.Thread(
            target=_in_thread,
            args=(outcomes, lock, secret, {"echo": "once", "wait": 0.1}, "same-key"),
            kwargs={"barrier": barrier, "delay": index * 0.008},
        )
        for index in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    first = [o for o in outcomes if o[0] == 201 and not o[1]]
    replayed = [o for o in outcomes if o[0] == 201 and o[1]]
    in_flight = [o for o in outcomes if o[0] == 409]
    assert len(outcomes) == 50 and len(first) == 1, outcomes
    assert len(first) + len(replayed) + len(in_flight) == 50, [o for o in outcomes if o[0] not in (201, 409)]
    assert all(o[2]["code"] == "idempotency_in_flight" for o in in_flight)
    assert all(o[2]["event"] == first[0][2]["event"] for o in replayed)
    assert runs() == 1
    assert IdempotencyRecord.objects.get().state == IdempotencyState.COMPLETED


@pytest.mark.services
def test_a_duplicate_while_the_first_runs_is_a_409_then_a_replay(postgres, secret):
    Work.gate = threading.Event()
    outcomes: list = []
    lock = threading.Lock()
    first = threading.Thread(target=_in_thread, args=(outcomes, lock, secret, {"gate": True}, "k-1"))
    try:
        first.start()
        deadline = time.monotonic() + 5
        while not _locked_by_another_session() and time.monotonic() < deadline:
            time.sleep(0.02)

        during = post(secret, {"gate": True}, key="k-1")
        Work.gate.set()
        first.join()
        after = post(secret, {"gate": True}, key="k-1")
    finally:
        Work.gate.set()
        Work.gate = None

    assert during.status_code == 409 and during.data["code"] == "idempotency_in_flight"
    assert during["Retry-After"] == "1" and "same key" in during.data["hint"]
    assert outcomes[0][0] == 201 and not outcomes[0][1]
    assert after.status_code == 201 and after["Idempotent-Replayed"] == "true"
    assert after.data["event"] == outcomes[0][2]["event"] and runs() == 1


def _locked_by_another_session() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        return cursor.fetchone()[0] > 0


# --- the ingestion endpoints, end to end ------------------------------------------------------


def _ingest_twice(client, path: str, body: dict, action: str):
    first = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-2026-03-04")
    second = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="batch-2026-03-04")

    assert first.status_code == 200, first.json()
    assert second.status_code == 200 and second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert AuditEvent.objects.filter(action=action).count() == 1
    # The bulk rate class, counted for the replay too.
    assert first["RateLimit-Policy"] == '"bulk";q=40;w=60'
    assert (first["RateLimit"].split(";")[1], second["RateLimit"].split(";")[1]) == ("r=39", "r=38")
    return first.json()


def test_profiles_bulk_replays_without_a_second_upsert(api):
    body = {"profiles": [{"external_id": "c-1", "region": "EU"}, {"external_id": "c-2"}]}

    outcome = _ingest_twice(api("developer"), "/api/v1/profiles/bulk", body, "profile.ingest")

    # A second real run would have answered 0 created, 2 unchanged.
    assert outcome == {"created": 2, "updated": 0, "unchanged": 0, "errors": []}


def test_profile_events_bulk_replays_without_a_second_ingest(api):
    from tests.factories import ProfileFactory

    ProfileFactory(external_id="c-1")
    body = {"events": [{"external_id": "c-1", "type": "cart_abandoned", "occurred_at": "2026-03-04T17:02:00Z"}]}

    outcome = _ingest_twice(api("developer"), "/api/v1/profile-events/bulk", body, "profile_event.ingest")

    assert outcome == {"created": 1, "duplicate": 0, "errors": []}
    from audiences.models import ProfileEvent

    assert ProfileEvent.objects.count() == 1  # no event_id: a second run would have stored it twice


def test_consent_sync_replays_without_a_second_sync(api):
    from tests.factories import ProfileFactory

    ProfileFactory(external_id="c-1")
    update = {
        "external_id": "c-1",
        "channel": "email",
        "status": "denied",
        "source": "preference_center",
        "captured_at": "2026-03-04T17:05:00Z",
    }

    outcome = _ingest_twice(api("developer"), "/api/v1/consent/sync", {"updates": [update]}, "consent.sync")

    assert outcome == {"updated": 1, "unchanged": 0, "stale": 0, "removed_from_audiences": 0, "errors": []}


def test_the_ingestion_endpoints_document_the_key_and_refuse_a_reused_one(api):
    client = api("developer")
    client.post("/api/v1/profiles/bulk", {"profiles": [{"external_id": "a"}]}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    reused = client.post(
        "/api/v1/profiles/bulk", {"profiles": [{"external_id": "b"}]}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    schema = client.get("/api/schema/", {"format": "json"}).json()

    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    for path in ("/api/v1/profiles/bulk/", "/api/v1/profile-events/bulk/", "/api/v1/consent/sync/"):
        names = [p["name"] for p in schema["paths"][path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names, path


def test_the_bulk_class_is_enforced_on_the_ingestion_endpoints(api):
    client = api("developer")
    token = ApiToken.objects.get(user=client.user)
    token.rate_limits = {"bulk": 2}
    token.save(update_fields=["rate_limits"])
    body = {"profiles": [{"external_id": "a"}]}

    statuses = [client.post("/api/v1/profiles/bulk", body, format="json").status_code for _ in range(3)]
    other_class = client.get("/api/v1/profiles")

    assert statuses == [200, 200, 429]
    assert other_class.status_code == 200 and other_class["RateLimit-Policy"] == '"read";q=1200;w=60'


def test_a_body_read_before_the_handler_is_fingerprinted_from_its_parsed_data(secret):
    class ReadsEarly(Work):
        def initial(self, request, *args, **kwargs):
            super().initial(request, *args, **kwargs)
            request.data  # noqa: B018 — as a permission class reading the body would

    early = ReadsEarly.as_view()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}", "HTTP_IDEMPOTENCY_KEY": "early"}

    first = early(factory.post("/api/v1/work", {"echo": "a"}, format="json", **headers))
    again = early(factory.post("/api/v1/work", {"echo": "a"}, format="json", **headers))
    other = early(factory.post("/api/v1/work", {"echo": "b"}, format="json", **headers))

    assert first.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert other.status_code == 422 and runs() == 1
