"""The audit trail API: who reads which events, filters, exports and chain verification."""

from __future__ import annotations

import csv
import io
import json
import types
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from governance.actors import Actor
from governance.audit import chain
from governance.audit import trail as audit
from governance.audit.exports import CSV_COLUMNS, ocsf_activity
from governance.models import ApiToken, AuditEvent
from tests.conftest import issue_test_token
from tests.governance.test_audit_chain import _tamper
from tests.refusals import refused

URL = "/api/v1/audit-events/"
EXPORT = "/api/v1/audit-events/export"
VERIFY = "/api/v1/audit-events/verify"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def record(user, environment, action="audience.edit", *, target=None, outcome="allowed", at=None, **kw):
    """One audit event by `user` (None: the system), written as a service would write it."""
    actor = Actor(
        user=user,
        environment=environment,
        token=kw.pop("token", None),
        ip=kw.pop("ip", "203.0.113.7"),
        request_id=kw.pop("request_id", "req_test"),
    )
    with transaction.atomic():
        if at is None:
            return audit.record(actor, action, target, outcome=outcome, **kw)
        original = audit.timezone
        audit.timezone = types.SimpleNamespace(now=lambda: at)  # type: ignore[assignment]
        try:
            return audit.record(actor, action, target, outcome=outcome, **kw)
        finally:
            audit.timezone = original


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


@pytest.fixture
def events(persona, sandbox, pilot):
    """Sandbox: two events by the analyst, one by an operator, one by the system;
    pilot: one by the analyst."""
    analyst, operator = persona("analyst"), persona("operator")
    return types.SimpleNamespace(
        analyst_1=record(analyst, sandbox, "profile.view_pii", target=("audiences.profile", 1, "cust-1"), at=T0),
        operator_1=record(
            operator, sandbox, "audience.publish", target=("audiences.audience", 42, "Lapsed EU"), at=T0 + timedelta(1)
        ),
        analyst_2=record(
            analyst,
            sandbox,
            "audience.edit",
            outcome="denied",
            target=("audiences.audience", 42, "Lapsed EU"),
            at=T0 + timedelta(2),
        ),
        system_1=record(None, sandbox, "sandbox.reset", at=T0 + timedelta(3)),
        analyst_pilot=record(analyst, pilot, "audience.edit", at=T0 + timedelta(4)),
    )


# --- who reads what -------------------------------------------------------------


@pytest.mark.parametrize("name", ["analyst", "operator", "developer"])
def test_roles_without_read_all_see_only_their_own_events(api, events, name):
    client = api(name)

    seen = ids(client.get(URL))

    expected = {"analyst": [events.analyst_2.pk, events.analyst_1.pk], "operator": [events.operator_1.pk]}
    assert seen == expected.get(name, [])


@pytest.mark.parametrize("name", ["approver", "compliance", "admin"])
def test_approvers_reviewers_and_admins_see_everyones_events_of_their_environment(api, events, name):
    seen = ids(api(name).get(URL))

    assert seen == [events.system_1.pk, events.analyst_2.pk, events.operator_1.pk, events.analyst_1.pk]
    assert events.analyst_pilot.pk not in seen


def test_another_environments_events_never_appear(api, events, pilot):
    assert ids(api("approver", pilot).get(URL)) == [events.analyst_pilot.pk]
    assert ids(api("analyst", pilot).get(URL)) == [events.analyst_pilot.pk]
    # Filtering by another environment's target or actor finds nothing either.
    assert ids(api("approver", pilot).get(URL, {"target": "audiences.audience:42"})) == []


@pytest.mark.parametrize("path", [URL, EXPORT, VERIFY])
def test_unauthenticated_is_a_401_problem(db, path):
    response = APIClient().get(path)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_authenticated"
    assert body["hint"] and body["request_id"]


@pytest.mark.parametrize("path", [URL, EXPORT, VERIFY])
def test_a_user_without_a_role_is_refused(api, path):
    response = api("nobody").get(path)

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "role" in response.json()["hint"]


# --- the shape of an event ------------------------------------------------------


def test_an_event_carries_who_what_when_where_and_the_chain(api, persona, sandbox):
    client = api("analyst")
    token = ApiToken.objects.get(user=client.user)
    event = record(
        persona("analyst"),
        sandbox,
        "consent.sync",
        target=("audiences.consent", "", "batch of 3 consent updates"),
        token=token,
        ip="198.51.100.4",
        request_id="req_abc",
        changes={"rows": 3},
        reasons=["because"],
        approval_refs=[7],
    )

    (item,) = client.get(URL).json()["results"]

    assert item == {
        "id": event.pk,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "environment": "sandbox",
        "actor": "p-analyst",
        "token_prefix": token.prefix,
        "door": "api",
        "ip": "198.51.100.4",
        "request_id": "req_abc",
        "action": "consent.sync",
        "target": {"type": "audiences.consent", "id": "", "label": "batch of 3 consent updates"},
        "outcome": "allowed",
        "reasons": ["because"],
        "changes": {"rows": 3},
        "approval_refs": [7],
        "hash": event.hash,
        "prev_hash": chain.GENESIS,
    }


def test_an_event_without_target_or_token(api, events):
    item = next(i for i in api("admin").get(URL).json()["results"] if i["id"] == events.system_1.pk)

    assert item["target"] is None
    assert item["token_prefix"] is None
    assert item["actor"] == "system (api)"


# --- filters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "p-analyst"}, ["analyst_2", "analyst_1"]),
        ({"actor": "system (api)"}, ["system_1"]),
        ({"actor": "someone-else"}, []),
        ({"action": "audience.publish"}, ["operator_1"]),
        ({"action": "audience.*"}, ["analyst_2", "operator_1"]),
        ({"action": "audience"}, []),
        ({"target": "audiences.audience:42"}, ["analyst_2", "operator_1"]),
        ({"target": "audiences.profile:*"}, ["analyst_1"]),
        ({"outcome": "denied"}, ["analyst_2"]),
        ({"since": "2026-03-03T09:00:00Z"}, ["system_1", "analyst_2", "operator_1"]),
        ({"until": "2026-03-03T09:00:00Z"}, ["analyst_1"]),
        ({"since": "2026-03-03", "until": "2026-03-05"}, ["analyst_2", "operator_1"]),
        # An unencoded "+" of an offset arrives as a space; it is read as the "+" it was.
        ({"since": "2026-03-03T10:00:00 01:00"}, ["system_1", "analyst_2", "operator_1"]),
        ({"since": "2026-03-03T09:00:00"}, ["system_1", "analyst_2", "operator_1"]),
        ({"action": "audience.*", "outcome": "allowed", "actor": "p-operator"}, ["operator_1"]),
        ({"actor": ""}, ["system_1", "analyst_2", "operator_1", "analyst_1"]),
    ],
)
def test_filters(api, events, params, expected):
    assert ids(api("admin").get(URL, params)) == [getattr(events, name).pk for name in expected]


def test_filters_apply_within_the_readers_scope(api, events):
    assert ids(api("analyst").get(URL, {"actor": "p-operator"})) == []


@pytest.mark.parametrize(
    ("params", "parameter", "code"),
    [
        ({"since": "yesterday"}, "since", "invalid_datetime"),
        ({"until": "2026-13-01T00:00:00Z"}, "until", "invalid_datetime"),
        ({"outcome": "maybe"}, "outcome", "invalid_choice"),
        ({"target": "audiences.audience"}, "target", "invalid"),
        ({"target": ":42"}, "target", "invalid"),
        ({"action": "Audience Publish"}, "action", "invalid"),
        ({"action": "*"}, "action", "invalid"),
        ({"since": "2026-03-05", "until": "2026-03-01"}, "until", "invalid_range"),
    ],
)
def test_bad_filter_values_are_a_422_naming_the_parameter(api, events, params, parameter, code):
    response = api("admin").get(URL, params)

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_filter"
    (error,) = body["errors"]
    assert (error["parameter"], error["code"]) == (parameter, code)
    assert error["hint"]


def test_every_bad_value_is_listed_at_once(api, events):
    body = api("admin").get(URL, {"since": "soon", "until": "later", "outcome": "maybe"}).json()

    assert sorted(e["parameter"] for e in body["errors"]) == ["outcome", "since", "until"]
    assert "allowed, denied, failed, approval_requested" in next(
        e["hint"] for e in body["errors"] if e["parameter"] == "outcome"
    )
    assert "2026-11-01T10:00:00Z" in next(e["hint"] for e in body["errors"] if e["parameter"] == "since")


def test_an_unknown_parameter_is_a_400_listing_the_known_ones(api, events):
    response = api("admin").get(URL, {"outcom": "denied"})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "unknown_query_parameter"
    assert body["allowed_parameters"] == sorted(
        ["action", "actor", "cursor", "limit", "outcome", "since", "target", "until"]
    )


# --- pagination and queries -----------------------------------------------------


def test_cursor_pagination_walks_every_event_once(api, persona, sandbox):
    admin = api("admin")
    created = [record(persona("operator"), sandbox).pk for _ in range(5)]

    first = admin.get(URL, {"limit": 2}).json()
    second = admin.get(first["next"]).json()
    third = admin.get(second["next"]).json()

    pages = [first, second, third]
    assert [item["id"] for page in pages for item in page["results"]] == created[::-1]
    assert third["next"] is None


def test_a_forged_cursor_is_a_400(api, events):
    response = api("admin").get(URL, {"cursor": "not-a-cursor"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_the_list_takes_the_same_queries_whatever_the_page_size(api, persona, sandbox, django_assert_num_queries):
    client = api("approver")
    for _ in range(30):
        record(persona("operator"), sandbox)
    record(persona("operator"), sandbox, token=ApiToken.objects.get(user=client.user))
    # Warm up: the token's last_used_at is written on first use, permissions are cached.
    client.get(URL)
    with CaptureQueriesContext(connection) as small:
        assert len(client.get(URL, {"limit": 2}).json()["results"]) == 2

    # Whatever else a request costs (authentication, roles), the page is one query,
    # with the environment's slug and the token's prefix joined in.
    with django_assert_num_queries(len(small.captured_queries)):
        assert len(client.get(URL, {"limit": 31}).json()["results"]) == 31
    assert sum("governance_auditevent" in q["sql"] for q in small.captured_queries) == 1


# --- export ---------------------------------------------------------------------


def _body(response) -> str:
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_export_jsonl_streams_the_listed_shape_oldest_first(api, events):
    client = api("admin")
    listed = client.get(URL).json()["results"]

    response = client.get(EXPORT, {"format": "jsonl"})

    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-sandbox-')
    assert response["Content-Disposition"].endswith('.jsonl"')
    lines = [json.loads(line) for line in _body(response).splitlines()]
    assert lines == listed[::-1]
    # Oldest first and unfiltered: the export can be checked link by link.
    assert [line["prev_hash"] for line in lines[1:]] == [line["hash"] for line in lines[:-1]]


def test_export_is_audited_once_and_holds_no_later_event(api, events):
    client = api("compliance")
    before = AuditEvent.objects.count()

    body = _body(client.get(EXPORT, {"action": "audience.*"}))

    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.outcome, event.actor_label) == ("audit.export", "allowed", "p-compliance")
    assert event.changes == {
        "format": "jsonl",
        "filters": {"action": "audience.*"},
        "events": 2,
        "up_to_id": events.analyst_2.pk,
    }
    assert [json.loads(line)["id"] for line in body.splitlines()] == [events.operator_1.pk, events.analyst_2.pk]


@pytest.mark.parametrize("export_format", ["jsonl", "csv", "ocsf"])
def test_export_queries_do_not_grow_with_the_events(api, persona, sandbox, export_format):
    client = api("admin")
    client.get(URL)
    token = ApiToken.objects.get(user=client.user)

    def queries(n: int) -> int:
        for _ in range(n):
            record(persona("operator"), sandbox, token=token)
        with CaptureQueriesContext(connection) as captured:
            _body(client.get(EXPORT, {"format": export_format}))
        return len(captured.captured_queries)

    assert queries(2) == queries(40)


def test_export_keeps_to_the_readers_scope(api, events):
    body = _body(api("analyst").get(EXPORT))

    assert [json.loads(line)["id"] for line in body.splitlines()] == [events.analyst_1.pk, events.analyst_2.pk]


def test_export_csv(api, persona, sandbox):
    record(persona("operator"), sandbox, "audience.create", target=("audiences.audience", 9, "=HYPERLINK(1)"))

    response = api("admin").get(EXPORT, {"format": "csv"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert tuple(rows[0]) == CSV_COLUMNS
    (row,) = rows
    assert (row["actor"], row["action"], row["target_type"], row["target_id"]) == (
        "p-operator",
        "audience.create",
        "audiences.audience",
        "9",
    )
    # A cell a spreadsheet would run as a formula is defused.
    assert row["target_label"] == "'=HYPERLINK(1)"
    assert json.loads(row["reasons"]) == []


def test_export_ocsf(api, persona, sandbox):
    client = api("admin")
    token = ApiToken.objects.get(user=client.user)
    allowed = record(
        persona("operator"),
        sandbox,
        "audience.publish",
        target=("audiences.audience", 42, "Lapsed EU"),
        token=token,
        request_id="req_ocsf",
    )
    record(None, sandbox, "sandbox.reset", outcome="failed", ip=None)

    response = client.get(EXPORT, {"format": "ocsf"})

    assert response["Content-Disposition"].endswith('.ocsf.jsonl"')
    first, second = (json.loads(line) for line in _body(response).splitlines())
    assert first["class_uid"] == 6003 and first["category_uid"] == 6
    assert (first["activity_id"], first["activity_name"], first["type_uid"]) == (3, "Update", 600303)
    assert first["time"] == int(allowed.occurred_at.timestamp() * 1000)
    assert (first["status_id"], first["status"], first["status_detail"]) == (1, "Success", "allowed")
    assert first["actor"]["user"] == {
        "name": "p-operator",
        "uid": str(allowed.actor_user_id),
        "type_id": 1,
        "type": "User",
    }
    assert first["src_endpoint"] == {"ip": "203.0.113.7"}
    assert first["api"]["operation"] == "audience.publish"
    assert first["api"]["request"] == {"uid": "req_ocsf"}
    assert first["metadata"]["uid"] == str(allowed.pk)
    assert first["metadata"]["product"]["name"] == "marketerapi"
    assert first["resources"] == [{"type": "audiences.audience", "uid": "42", "name": "Lapsed EU"}]
    assert first["unmapped"]["token_prefix"] == token.prefix
    assert first["unmapped"]["hash"] == allowed.hash
    assert (second["status_id"], second["status"]) == (2, "Failure")
    assert second["actor"]["user"]["type_id"] == 3
    assert second["src_endpoint"] == {}
    assert "resources" not in second


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("audience.create", (1, "Create")),
        ("profile.ingest", (1, "Create")),
        ("profile.view_pii", (2, "Read")),
        ("audit.export", (2, "Read")),
        ("audience.publish_requested", (3, "Update")),
        ("consent.sync", (3, "Update")),
        ("token.revoke", (4, "Delete")),
        ("audience.archive", (4, "Delete")),
        ("something.odd", (99, "Other")),
    ],
)
def test_ocsf_activity_follows_the_actions_verb(action, expected):
    assert ocsf_activity(action) == expected


def test_an_unknown_export_format_is_a_422_listing_the_allowed_ones(api, events):
    before = AuditEvent.objects.count()

    response = api("admin").get(EXPORT, {"format": "xml"})

    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_export_format"
    assert body["allowed_formats"] == ["jsonl", "csv", "ocsf"]
    assert "format=jsonl" in body["hint"]
    assert AuditEvent.objects.count() == before


def test_export_refuses_bad_filters_and_unknown_parameters(api, events):
    client = api("admin")

    assert client.get(EXPORT, {"since": "yesterday"}).json()["code"] == "invalid_filter"
    assert client.get(EXPORT, {"cursor": "abc"}).json()["code"] == "unknown_query_parameter"


def test_export_needs_the_export_scope_and_a_refusal_is_audited(persona, sandbox):
    user = persona("admin")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(user, sandbox, ['read'])}")

    response = client.get(EXPORT)

    assert "'export' scope" in refused(response, 403, "permission_denied")["detail"]
    denied = AuditEvent.objects.get()
    assert (denied.action, denied.outcome, denied.actor_label) == ("audit.export", "denied", "p-admin")
    # Reading the list needs only the read scope.
    assert client.get(URL).status_code == 200


def test_an_empty_export(api):
    client = api("developer")

    response = client.get(EXPORT, {"format": "csv"})

    assert _body(response).splitlines() == [",".join(CSV_COLUMNS)]
    assert AuditEvent.objects.get().changes["events"] == 0


# --- verify ---------------------------------------------------------------------


def test_verify_an_intact_chain(api, events):
    body = api("analyst").get(VERIFY).json()

    assert body == {
        "environment": "sandbox",
        "valid": True,
        "checked": 4,
        "first_broken": None,
        "head": {"id": events.system_1.pk, "hash": events.system_1.hash},
    }


def test_verify_names_the_first_broken_row_of_the_callers_environment(api, events, pilot):
    _tamper("UPDATE governance_auditevent SET outcome = %s WHERE id = %s", ["allowed", events.analyst_2.pk])

    body = api("analyst").get(VERIFY).json()

    assert body["valid"] is False
    assert body["checked"] == 3
    assert body["first_broken"] == {
        "id": events.analyst_2.pk,
        "reason": "the row's content does not match its hash: it was altered",
    }
    assert body["head"] is None
    assert api("analyst", pilot).get(VERIFY).json()["valid"] is True


def test_verify_an_empty_chain(api):
    assert api("developer").get(VERIFY).json() == {
        "environment": "sandbox",
        "valid": True,
        "checked": 0,
        "first_broken": None,
        "head": None,
    }


# --- manage.py audit_verify -----------------------------------------------------


def test_audit_verify_command_reports_every_environment(events, capsys):
    call_command("audit_verify")

    out = capsys.readouterr().out
    assert "sandbox: intact, 4 events checked" in out
    assert "pilot: intact, 1 events checked" in out
    assert "production: intact, 0 events checked" in out


def test_audit_verify_command_fails_naming_the_first_broken_row(events, capsys):
    rows = list(AuditEvent.objects.filter(environment__slug="sandbox").order_by("id"))
    _tamper("DELETE FROM governance_auditevent WHERE id = %s", [rows[1].pk])

    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")

    assert failure.value.returncode == 1
    assert f"sandbox at event #{rows[2].pk}" in str(failure.value)
    assert "removed or reordered" in str(failure.value)
    assert f"sandbox: BROKEN at event #{rows[2].pk}" in capsys.readouterr().out


def test_audit_verify_command_one_environment_as_json(events, capsys):
    call_command("audit_verify", "--environment", "pilot", "--json")

    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "environment": "pilot",
        "valid": True,
        "checked": 1,
        "first_broken": None,
        "head": {"id": events.analyst_pilot.pk, "hash": events.analyst_pilot.hash},
    }


def test_audit_verify_command_unknown_environment(db):
    with pytest.raises(CommandError, match=r"no environment 'staging'.*sandbox") as failure:
        call_command("audit_verify", "--environment", "staging")

    assert failure.value.returncode == 2


def test_audit_verify_command_from_a_row_checks_what_was_written_since(events, capsys):
    _tamper("UPDATE governance_auditevent SET outcome = %s WHERE id = %s", ["allowed", events.analyst_2.pk])
    with pytest.raises(CommandError):
        call_command("audit_verify", "--environment", "sandbox")

    call_command("audit_verify", "--environment", "sandbox", "--from", str(events.system_1.pk))

    assert f"sandbox: intact from #{events.system_1.pk}, 1 events checked" in capsys.readouterr().out
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", "--from", str(events.system_1.pk))
    assert failure.value.returncode == 2
