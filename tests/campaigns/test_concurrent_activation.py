"""Fifty activations at once (threads with their own connections, on PostgreSQL): with one
Idempotency-Key they start one job; without a key the campaign still sends each recipient once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from campaigns.models import Campaign, Send
from governance.models import AuditEvent
from integrations.models import Job
from tests.campaigns.support import audience_with, campaign_for, drop, people
from tests.conftest import issue_test_token, require_service

pytestmark = [pytest.mark.services, pytest.mark.slow]

CALLERS = 50


@pytest.fixture
def postgres(django_db_serialized_rollback, transactional_db):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "concurrent activations need row locks across connections; set DATABASE_URL")


def _at_once(call, count=CALLERS):
    answers: list = []
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def work():
        try:
            start.wait()
            answers.append(call())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    return answers


@pytest.fixture
def campaign(postgres, actor, sandbox, tmp_path, eager_celery):
    operator = actor("operator")
    audience = audience_with(sandbox, people(sandbox, "cc", 4))
    created = campaign_for(operator, audience, drop(sandbox, str(tmp_path)))
    secret = issue_test_token(operator.user, sandbox)
    return created, secret, tmp_path


def _activate(campaign_id: int, secret: str, key: str | None):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    response = client.post(f"/api/v1/campaigns/{campaign_id}/activate", **headers)
    return response.status_code, response.json()


def _sent(directory: Path) -> Counter:
    import json

    seen: Counter = Counter()
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            seen[json.loads(line)["external_id"]] += 1
    return seen


def test_fifty_activations_with_one_key_start_one_job(campaign):
    created, secret, directory = campaign
    key = str(uuid.uuid4())
    answers = _at_once(lambda: _activate(created.pk, secret, key))
    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {202, 409}, answers
    accepted = [body for status, body in answers if status == 202]
    assert accepted and all(body == accepted[0] for body in accepted)  # replays of the first answer
    assert Job.objects.filter(kind="campaign.send").count() == 1
    assert AuditEvent.objects.filter(action="campaign.activate", outcome="allowed").count() == 1
    assert _sent(directory) == Counter({f"cc-{n}": 1 for n in range(4)})


def test_fifty_activations_without_a_key_still_send_once(campaign):
    created, secret, directory = campaign
    answers = _at_once(lambda: _activate(created.pk, secret, None))
    statuses = Counter(status for status, _ in answers)
    assert statuses[202] == 1 and statuses[409] == CALLERS - 1, statuses
    assert {body["code"] for status, body in answers if status == 409} == {"campaign_state_conflict"}
    assert Job.objects.filter(kind="campaign.send").count() == 1
    assert Send.objects.filter(campaign=created, state="sent").count() == 4
    assert Campaign.objects.get(pk=created.pk).state == "completed"
    assert _sent(directory) == Counter({f"cc-{n}": 1 for n in range(4)})
