"""Suppression lists through the API: named and global lists, entries by external id or
email hash (never the email itself), two approvals for the global list in pilot."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.models import SuppressionEntry, SuppressionList
from audiences.reach import compute_preview
from audiences.suppressions.entries import hash_email
from governance.actors import Actor
from governance.approvals import approval_approve, approval_execute
from governance.models import ApprovalRequest, AuditEvent, Door
from tests.factories import ConsentFactory, ProfileFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/suppressions/"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def code_of(response) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


def test_hash_email_lowercases_like_the_profile_column(sandbox):
    profile = ProfileFactory(environment=sandbox, email="Ann.Example@Mail.Example")
    profile.refresh_from_db()

    assert hash_email(" Ann.Example@Mail.Example ") == sha("ann.example@mail.example") == profile.email_hash


def test_adding_to_the_global_list_stores_ids_and_email_hashes_only(api, sandbox):
    body = {
        "list": "global",
        "entries": [
            {"external_id": "cust-1"},
            {"email": "Ann@Example.COM"},
            {"email": "ann@example.com"},  # the same person twice: one entry
            {"email_hash": sha("bo@example.com").upper()},
        ],
        "reason": "complaint",
    }

    response = api("operator").post(URL, body, format="json")

    assert response.status_code == 200, response.content
    result = response.json()
    assert (result["added"], result["already_listed"]) == (3, 0)
    assert result["list"]["is_global"] is True and result["list"]["entries"] == 3
    rows = set(SuppressionEntry.objects.values_list("external_id", "email_hash", "reason"))
    assert rows == {
        ("cust-1", None, "complaint"),
        (None, sha("ann@example.com"), "complaint"),
        (None, sha("bo@example.com"), "complaint"),
    }
    event = AuditEvent.objects.get(action="suppression.change_global")
    assert event.changes["added"] == 3
    assert "example.com" not in json.dumps(event.changes).lower().replace(sha("ann@example.com"), "")


def test_sending_the_same_entries_again_adds_nothing(api, sandbox):
    client = api("operator")
    body = {"list": "global", "entries": [{"external_id": "cust-1"}, {"email": "ann@example.com"}]}
    client.post(URL, body, format="json")

    again = client.post(URL, body, format="json").json()

    assert (again["added"], again["already_listed"]) == (0, 2)
    assert SuppressionEntry.objects.count() == 2


def test_removing_entries_counts_what_was_not_listed(api, sandbox):
    client = api("operator")
    client.post(URL, {"list": "global", "entries": [{"external_id": "a"}, {"email": "b@example.com"}]}, format="json")

    result = client.post(
        URL,
        {"list": "global", "remove": [{"external_id": "a"}, {"email": "B@example.com"}, {"external_id": "zzz"}]},
        format="json",
    ).json()

    assert (result["removed"], result["not_listed"]) == (2, 1)
    assert not SuppressionEntry.objects.exists()


def test_suppressed_people_leave_the_preview(api, sandbox):
    person = ProfileFactory(environment=sandbox, external_id="c-1", email="Zoe@Example.test")
    other = ProfileFactory(environment=sandbox, external_id="c-2")
    for profile in (person, other):
        ConsentFactory(profile=profile, channel="email")
    rules = {"attr": "region", "op": "eq", "value": "UK"}
    assert compute_preview(environment=sandbox, rules=rules, channel="email")["reachable"] == 2

    api("operator").post(URL, {"list": "global", "entries": [{"email": "zoe@example.test"}]}, format="json")

    assert compute_preview(environment=sandbox, rules=rules, channel="email")["reachable"] == 1


def test_creating_a_named_list_with_entries(api, sandbox):
    response = api("operator").post(
        URL,
        {"name": "Complaints", "description": "People who complained", "entries": [{"external_id": "x"}]},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["list"]["name"] == "Complaints" and body["list"]["is_global"] is False
    assert body["added"] == 1
    event = AuditEvent.objects.get(action="suppression.create")
    assert event.changes["after"]["name"] == "Complaints" and event.changes["added"] == 1


def test_named_lists_are_changed_by_name(api, sandbox):
    client = api("operator")
    client.post(URL, {"name": "Complaints"}, format="json")

    response = client.post(URL, {"list": "Complaints", "entries": [{"external_id": "x"}]}, format="json")

    assert response.status_code == 200
    assert AuditEvent.objects.get(action="suppression.change").changes["list"] == "Complaints"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "global"}, 422, "invalid_input"),
        ({"list": "Nope", "entries": [{"external_id": "x"}]}, 404, "suppression_list_not_found"),
        ({"name": "A", "list": "global"}, 422, "invalid_input"),
        ({"entries": [{"external_id": "x"}]}, 422, "invalid_input"),
        ({"list": "global"}, 422, "invalid_input"),
        ({"list": "global", "entries": {"external_id": "x"}}, 422, "invalid_input"),
        ({"list": "global", "entries": [{"external_id": "x"}], "ttl": 3}, 400, "unknown_fields"),
        ({"list": "global", "entries": [{"phone": "+44"}]}, 400, "unknown_fields"),
        ({"list": "global", "entries": ["x"]}, 400, "invalid_request"),
        ({"name": "Fresh", "remove": [{"external_id": "x"}]}, 422, "invalid_input"),
    ],
)
def test_bad_requests(api, sandbox, body, status, code):
    assert code_of(api("operator").post(URL, body, format="json")) == (status, code)
    assert not SuppressionEntry.objects.exists()


def test_every_bad_entry_is_listed_and_nothing_is_applied(api, sandbox):
    body = {
        "list": "global",
        "entries": [
            {"external_id": "ok"},
            {"email": "not-an-email"},
            {"external_id": "x", "email": "x@example.com"},
            {"email_hash": "abc"},
            {"external_id": ""},
        ],
    }

    response = api("operator").post(URL, body, format="json")

    assert code_of(response) == (422, "invalid_rows")
    assert [(e["pointer"], e["code"]) for e in response.json()["errors"]] == [
        ("/entries/1/email", "invalid_email"),
        ("/entries/2", "one_key"),
        ("/entries/3/email_hash", "invalid_hash"),
        ("/entries/4/external_id", "blank"),
    ]
    assert not SuppressionEntry.objects.exists()


def test_a_named_list_name_is_unique(api, sandbox):
    client = api("operator")
    client.post(URL, {"name": "Complaints"}, format="json")

    assert code_of(client.post(URL, {"name": "Complaints"}, format="json")) == (409, "suppression_list_exists")


def test_too_many_entries_is_413(api, sandbox, settings):
    settings.BULK_MAX_ROWS = 3
    entries = [{"external_id": f"c-{i}"} for i in range(4)]

    assert code_of(api("operator").post(URL, {"list": "global", "entries": entries}, format="json")) == (
        413,
        "batch_too_large",
    )


@pytest.mark.parametrize(("who", "status"), [("analyst", 403), ("approver", 403), ("developer", 200), ("admin", 200)])
def test_who_may_change_suppressions(api, sandbox, who, status):
    response = api(who).post(URL, {"list": "global", "entries": [{"external_id": "x"}]}, format="json")

    assert response.status_code == status, response.content


def test_everyone_lists_the_lists_of_their_environment_with_counts(api, sandbox, production):
    glob = SuppressionList.objects.get(environment=sandbox, is_global=True)
    SuppressionEntry.objects.bulk_create(
        [SuppressionEntry(suppression_list=glob, external_id=f"c{i}") for i in range(3)]
    )
    SuppressionList.objects.create(environment=sandbox, name="Complaints")
    SuppressionList.objects.create(environment=production, name="Elsewhere")
    client = api("analyst")
    client.get(URL)

    with CaptureQueriesContext(connection) as ctx:
        response = client.get(URL)

    rows = response.json()["results"]
    assert sorted((r["name"], r["entries"], r["is_global"]) for r in rows) == [
        ("Complaints", 0, False),
        ("global", 3, True),
    ]
    assert len(ctx) == 1, [q["sql"][:100] for q in ctx.captured_queries]  # the token is cached
    assert [r["name"] for r in client.get(f"{URL}?is_global=true").json()["results"]] == ["global"]
    assert client.get(f"{URL}?kind=x").status_code == 400


# --- the global list in pilot --------------------------------------------------------------------


def test_changing_the_global_list_in_pilot_waits_for_two_approvals(api, pilot, persona):
    client = api("operator", pilot)

    response = client.post(
        URL, {"list": "global", "entries": [{"email": "Ann@Example.com"}, {"external_id": "c-9"}]}, format="json"
    )

    assert response.status_code == 202, response.content
    approval = response.json()["approval"]
    assert approval["required"] == 2
    assert not SuppressionEntry.objects.exists()
    request = ApprovalRequest.objects.get(pk=approval["id"])
    assert "Ann@Example.com".lower() not in json.dumps(request.change).lower()
    assert request.change["add"] == {"external_id": ["c-9"], "email_hash": [sha("ann@example.com")]}
    assert AuditEvent.objects.get(action="suppression.change_global").outcome == "approval_requested"

    for name in ("approver", "developer"):
        approval_approve(actor=Actor(user=persona(name), environment=pilot, door=Door.API), request=request)
    approval_execute(request.pk)

    request.refresh_from_db()
    assert request.state == "executed", request.result
    assert request.result == {"list": "global", "added": 2, "already_listed": 0, "removed": 0, "not_listed": 0}
    assert set(SuppressionEntry.objects.values_list("external_id", "email_hash")) == {
        ("c-9", None),
        (None, sha("ann@example.com")),
    }
    done = AuditEvent.objects.get(action="suppression.change_global", outcome="allowed")
    assert done.actor_label == "p-operator" and len(done.approval_refs) == 2


def test_named_lists_in_pilot_change_without_approval(api, pilot):
    client = api("operator", pilot)
    client.post(URL, {"name": "Complaints"}, format="json")

    response = client.post(URL, {"list": "Complaints", "entries": [{"external_id": "x"}]}, format="json")

    assert response.status_code == 200
    assert SuppressionEntry.objects.count() == 1


def test_a_resent_change_with_its_idempotency_key_is_replayed(api, sandbox):
    client = api("operator")
    body = {"list": "global", "entries": [{"external_id": "x"}]}

    first = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sup-1")
    again = client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sup-1")

    assert first.json() == again.json() and first.json()["added"] == 1
    assert again["Idempotent-Replayed"] == "true"
    assert AuditEvent.objects.filter(action="suppression.change_global").count() == 1


# --- every environment has its global list -------------------------------------------------------


def test_every_environment_lists_its_global_list_before_any_change(api, sandbox, pilot, production):
    """The docs say every environment has a global list; GET showed none until the first
    write (issue 11, item 12). Existing environments got theirs by migration."""
    for environment in (sandbox, pilot, production):
        rows = api("analyst", environment).get(URL).json()["results"]

        assert [(r["name"], r["is_global"], r["entries"]) for r in rows] == [("global", True, 0)]


def test_a_new_environment_has_its_global_list_from_the_start(api, persona, sandbox):
    from governance.configuration.services import environment_save
    from governance.models import DataKind, Environment

    admin_actor = Actor(user=persona("admin"), environment=sandbox, door=Door.ADMIN)
    staging = environment_save(
        actor=admin_actor,
        environment=Environment(slug="staging", name="Staging", data_kind=DataKind.SYNTHETIC, time_zone="UTC"),
    )

    rows = api("analyst", staging).get(URL).json()["results"]

    assert [(r["name"], r["is_global"]) for r in rows] == [("global", True)]
    assert SuppressionList.objects.get(environment=staging, is_global=True).description


def test_the_global_list_is_made_once_even_when_asked_twice(sandbox):
    from audiences.suppressions.services import global_list_ensure

    first = global_list_ensure(environment=sandbox)
    again = global_list_ensure(environment=sandbox)

    assert first.pk == again.pk
    assert SuppressionList.objects.filter(environment=sandbox, is_global=True).count() == 1


def test_the_global_change_files_or_runs_through_request_or_run(actor, sandbox, pilot):
    from audiences.suppressions.services import suppression_entries_change

    ran = suppression_entries_change(actor=actor("operator"), list_name="global", add=[("external_id", "x")])
    filed = suppression_entries_change(actor=actor("operator", pilot), list_name="global", add=[("external_id", "x")])

    assert ran.ran and ran.result is not None and ran.result.added == 1 and not ran.result.created
    assert not filed.ran and filed.result is None and filed.approval is not None
    assert filed.approval.action == "suppression.change_global" and filed.approval.environment == pilot


def test_a_second_global_change_waits_while_one_is_open_in_that_environment_only(api, pilot, production):
    body = {"list": "global", "entries": [{"external_id": "c-1"}]}
    first = api("operator", pilot).post(URL, body, format="json")
    assert first.status_code == 202

    again = api("operator", pilot).post(URL, {"list": "global", "entries": [{"external_id": "c-2"}]}, format="json")
    elsewhere = api("operator", production).post(URL, body, format="json")

    # the open request is found in its environment: production's global list is not held
    assert code_of(again) == (409, "approval_pending")
    assert again.json()["approval_url"] == f"/api/v1/approvals/{first.json()['approval']['id']}"
    assert elsewhere.status_code == 202, elsewhere.content
