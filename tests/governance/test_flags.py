"""Feature flags: who has a flag (everyone, pilot groups, users, percentage), the gates for
views, GET /flags/, audited changes through flag_set and PATCH /flags/{name}, switching off a
personalization flag with two approvals (one request at a time), and what a change made
around the services leaves: history, no audit event."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.decorators import api_view
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate
from rest_framework.views import APIView
from waffle.models import Flag, Switch

from governance.actors import Actor
from governance.flags.capabilities import CAPABILITY_FLAGS
from governance.flags.errors import PersonalizationFlagNeedsApproval
from governance.flags.gates import FlagRequired, flag_required
from governance.flags.rollout import evaluate, narrows, rollout_bucket
from governance.flags.selectors import flag_active_for
from governance.flags.services import KEEP, flag_set
from governance.models import ApprovalRequest, AuditEvent, Door, Environment, FlagMeta, OutboxEvent
from tests import refusals
from tests.conftest import issue_test_token
from tests.factories import UserFactory

# What the approved action does is tested here; the broker is tested elsewhere.
pytestmark = pytest.mark.usefixtures("eager_celery")


@pytest.fixture(autouse=True)
def fresh_flag_cache():
    """waffle caches flags; rows rolled back between tests must not linger in the cache."""
    cache.clear()
    yield
    cache.clear()


def new_flag(name: str = "beta_preview", *, personalization: bool = False, **settings) -> Flag:
    flag = Flag.objects.create(name=name, superusers=False, **settings)
    FlagMeta.objects.create(
        flag=flag,
        description=f"What {name} gates.",
        owner="growth",
        affects_personalization=personalization,
    )
    return flag


def since(event_id: int):
    return AuditEvent.objects.filter(id__gt=event_id).order_by("id")


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def bearer(user, environment: Environment, scopes=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_test_token(user, environment, scopes)}")
    return client


# --- who has a flag ------------------------------------------------------------------------


def test_everyone_on_and_off_override_the_rest(persona):
    user = persona("analyst")
    flag = new_flag(everyone=True)
    assert flag_active_for(flag.name, Actor(user=user, environment=None)) is True  # type: ignore[arg-type]

    flag.everyone = False
    flag.save()
    flag.groups.add(Group.objects.get(name="growth"))
    flag.flush()
    assert evaluate(Flag.get(flag.name), user).reason == "off for everyone"
    assert flag_active_for("no_such_flag", Actor(user=user, environment=None)) is False  # type: ignore[arg-type]


def test_a_pilot_group_and_named_users_have_it(persona):
    member, other, named = persona("analyst"), persona("operator2"), persona("approver")
    pilot_group = Group.objects.create(name="pilot-testers")
    member.groups.add(pilot_group)
    flag = new_flag()
    flag.groups.add(pilot_group)
    flag.users.add(named)

    assert evaluate(Flag.get(flag.name), member) == evaluate(Flag.get(flag.name), member)
    assert evaluate(Flag.get(flag.name), member).active
    assert evaluate(Flag.get(flag.name), named).reason == "on for you by name"
    assert not evaluate(Flag.get(flag.name), other).active
    assert not evaluate(Flag.get(flag.name), None).active


def test_the_percentage_is_stable_per_person_and_independent_per_flag():
    ids = range(1, 4001)
    in_at = {p: {i for i in ids if rollout_bucket("beta_preview", i) < p * 10} for p in (10, 50)}
    assert 0.08 < len(in_at[10]) / 4000 < 0.12 and 0.46 < len(in_at[50]) / 4000 < 0.54
    assert in_at[10] <= in_at[50]  # who is in stays in as the percentage grows
    other = {i for i in ids if rollout_bucket("other_flag", i) < 100}
    assert len(other & in_at[10]) < 0.3 * len(in_at[10])  # not the same guinea pigs for every flag


def test_a_percentage_flag_for_real_users(persona):
    flag = new_flag(percent=50)
    users = [UserFactory(username=f"pct-{i}") for i in range(40)]
    active = [u for u in users if flag_active_for(flag.name, SimpleNamespace(user=u))]
    assert 0 < len(active) < 40
    assert all(rollout_bucket(flag.name, u.pk) < 500 for u in active)
    assert "rollout" in evaluate(Flag.get(flag.name), users[0]).reason


# --- gates for views -------------------------------------------------------------------------


class Gated(APIView):
    permission_classes = [IsAuthenticated, FlagRequired("beta_preview")]

    def get(self, request):
        return Response({"ok": True})


@api_view(["GET"])
@flag_required("beta_preview")
def gated_function(request):
    return Response({"ok": True})


@flag_required("beta_preview")
def gated_page(request):
    from django.http import HttpResponse

    return HttpResponse("ok")


def test_flag_required_refuses_with_feature_disabled_until_the_flag_is_on(persona):
    user = persona("analyst")
    flag = new_flag(everyone=False)
    request = APIRequestFactory().get("/api/v1/gated")
    force_authenticate(request, user=user)

    refused = Gated.as_view()(request)
    assert refused.status_code == 403
    assert refused.data["code"] == "feature_disabled" and "pilot group" in refused.data["hint"]
    assert refused.data["flag"] == "beta_preview"
    function_refused = gated_function(request)
    assert function_refused.status_code == 403 and function_refused.data["code"] == "feature_disabled"

    flag.everyone = True
    flag.save()
    flag.flush()
    assert Gated.as_view()(request).data == {"ok": True}
    assert gated_function(request).status_code == 200


def test_flag_required_on_a_portal_page_and_a_plain_api_view(persona):
    new_flag(everyone=False)
    page = RequestFactory().get("/audiences/new")
    page.user = persona("analyst")
    refused = gated_page(page)
    assert refused.status_code == 403 and b"not enabled for you" in refused.content

    api_request = RequestFactory().get("/api/v1/plain", HTTP_ACCEPT="application/json")
    api_request.user = page.user
    problem = gated_page(api_request)
    assert problem.status_code == 403 and problem["Content-Type"] == "application/problem+json"
    assert json.loads(problem.content)["code"] == "feature_disabled"


# --- GET /flags/ ------------------------------------------------------------------------------------


def test_get_flags_says_what_is_on_for_the_caller_and_why(api, persona):
    client = api("analyst")
    pilot_group = Group.objects.create(name="pilot-testers")
    client.user.groups.add(pilot_group)
    on = new_flag("next_best_offer", personalization=True)
    on.groups.add(pilot_group)
    new_flag("beta_preview", everyone=False)

    # The product's own capability flags (a data migration) are listed too; these are the test's.
    body = [f for f in client.get("/api/v1/flags/").json()["results"] if f["name"] not in CAPABILITY_FLAGS]

    assert [(f["name"], f["active"]) for f in body] == [("beta_preview", False), ("next_best_offer", True)]
    offer = body[1]
    assert offer["reason"] == "on for a group you are in (pilot group)"
    assert (offer["description"], offer["owner"], offer["affects_personalization"]) == (
        "What next_best_offer gates.",
        "growth",
        True,
    )
    assert offer["rollout"] == {"everyone": None, "percent": None, "groups": ["pilot-testers"], "users": 0}
    assert client.get("/api/v1/flags/next_best_offer").json()["active"] is True
    assert client.get("/api/v1/flags/nope").json()["code"] == "flag_not_found"


def test_get_flags_takes_the_same_queries_however_many_flags(api):
    client = api("analyst")
    group = Group.objects.create(name="pilot-testers")
    for index in range(2):
        new_flag(f"flag_{index}").groups.add(group)
    client.get("/api/v1/flags/")
    with CaptureQueriesContext(connection) as few:
        client.get("/api/v1/flags/")
    for index in range(2, 8):
        new_flag(f"flag_{index}", percent=20).groups.add(group)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/api/v1/flags/").json()["results"]) == 8 + len(CAPABILITY_FLAGS)
    assert len(many.captured_queries) == len(few.captured_queries)


# --- changes through flag_set -----------------------------------------------------------------------


def test_progressive_exposure_is_audited_and_announced_in_every_environment(persona, sandbox):
    admin = Actor(user=persona("admin"), environment=sandbox, door=Door.API, request_id="req_flags")
    member = persona("analyst")
    new_flag("beta_preview")
    Group.objects.create(name="pilot-testers").user_set.add(member)
    start = last_event_id()

    # a pilot group, then a percentage, then everyone
    flag_set(actor=admin, flag_name="beta_preview", groups=["pilot-testers"])
    assert flag_active_for("beta_preview", SimpleNamespace(user=member))
    flag_set(actor=admin, flag_name="beta_preview", percent=25)
    change = flag_set(actor=admin, flag_name="beta_preview", everyone=True).result

    assert change is not None and change.changed and change.after["everyone"] is True
    assert flag_active_for("beta_preview", SimpleNamespace(user=persona("outsider")))
    events = list(since(start))
    assert [(e.action, e.outcome, e.door) for e in events] == [("flag.change", "allowed", "api")] * 3
    assert events[0].changes["before"]["groups"] == [] and events[0].changes["after"]["groups"] == ["pilot-testers"]
    assert (events[1].changes["before"]["percent"], events[1].changes["after"]["percent"]) == (None, 25.0)
    announced = OutboxEvent.objects.filter(type="flag.changed", data__by="p-admin")
    assert announced.count() == 3 * Environment.objects.count()
    assert {e.environment.slug for e in announced} == set(Environment.objects.values_list("slug", flat=True))


def test_a_change_to_the_same_settings_writes_nothing(persona, sandbox):
    new_flag(everyone=True)
    start = last_event_id()
    outcome = flag_set(actor=Actor(user=persona("admin"), environment=sandbox), flag_name="beta_preview", everyone=True)
    assert outcome.ran and outcome.result is not None
    assert not outcome.result.changed and outcome.result.notes and not since(start).exists()


def test_only_admins_change_flags_and_bad_values_are_explained(api, persona, sandbox):
    new_flag()
    developer = api("developer")
    refusal = developer.patch("/api/v1/flags/beta_preview", {"everyone": True}, format="json")
    assert "admin" in refusals.refused(refusal, 403, "permission_denied")["detail"]
    refusals.denied_event(developer.user, "flag.change")

    admin = api("admin")
    assert admin.patch("/api/v1/flags/beta_preview", {"percent": 120}, format="json").status_code == 400
    unknown = admin.patch("/api/v1/flags/beta_preview", {"groups": ["nope"]}, format="json")
    assert unknown.status_code == 422 and "nope" in unknown.json()["detail"]
    assert admin.patch("/api/v1/flags/beta_preview", {"colour": "red"}, format="json").status_code == 400
    refusals.refused(admin.patch("/api/v1/flags/missing", {"everyone": True}, format="json"), 404, "flag_not_found")


def test_patch_applies_a_change_with_one_audit_event(api):
    new_flag(everyone=None)
    client = api("admin")
    start = last_event_id()

    response = client.patch("/api/v1/flags/beta_preview/", {"everyone": True}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["changed"] is True and response.json()["flag"]["active"] is True
    assert list(since(start).values_list("action", "outcome", "actor_label")) == [("flag.change", "allowed", "p-admin")]


def test_narrowing_rules():
    base = {
        "everyone": None,
        "percent": 20.0,
        "groups": ["a"],
        "users": [],
        "superusers": False,
        "staff": False,
        "authenticated": False,
    }
    assert narrows({**base, "everyone": True}, {**base, "everyone": False})
    assert narrows({**base, "everyone": True}, {**base, "everyone": None})
    assert narrows(base, {**base, "percent": 10.0})
    assert narrows(base, {**base, "groups": []})
    assert not narrows(base, {**base, "percent": 30.0, "groups": ["a", "b"]})
    assert not narrows(base, {**base, "everyone": True})
    assert not narrows({**base, "everyone": False}, {**base, "everyone": None, "percent": 0.0})


# --- personalization flags ------------------------------------------------------------------------------


def test_switching_off_a_personalization_flag_in_production_needs_approver_and_admin(
    persona, production, django_capture_on_commit_callbacks
):
    # given: a personalization flag that is on for everyone
    new_flag("next_best_offer", personalization=True, everyone=True)
    requester = persona("admin")
    admin = bearer(requester, production)

    # when: an admin switches it off in production
    filed = admin.patch("/api/v1/flags/next_best_offer", {"everyone": False}, format="json")

    # then: 202 with an approval request, and the flag is still on
    assert filed.status_code == 202, filed.json()
    approval = filed.json()["approval"]
    assert (approval["state"], approval["required"], approval["received"]) == ("pending", 2, 0)
    assert "next_best_offer" in approval["summary"]
    assert Flag.objects.get(name="next_best_offer").everyone is True
    request = ApprovalRequest.objects.get(pk=approval["id"])
    assert (request.action, request.environment, request.policy["steps"]) == (
        "flag.disable_personalization",
        production,
        [["approver"], ["admin"]],
    )

    url = f"/api/v1/approvals/{approval['id']}/approve"
    assert admin.post(url).json()["code"] == "self_approval"
    first = bearer(persona("approver"), production).post(url)
    assert first.status_code == 200 and first.json()["message"] == "Approved (1 of 2). Still needed: an admin."
    start = last_event_id()

    second_admin = UserFactory(username="admin-two", groups=["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        second = bearer(second_admin, production).post(url)

    assert second.status_code == 200, second.json()
    request.refresh_from_db()
    assert request.state == "executed", request.result
    assert Flag.objects.get(name="next_best_offer").everyone is False
    change = since(start).get(action="flag.disable_personalization")
    assert (change.outcome, change.door, change.actor_user) == ("allowed", "task", requester)
    assert sorted(r["voter"] for r in change.approval_refs) == ["admin-two", "p-approver"]
    assert change.changes["before"]["everyone"] is True and change.changes["after"]["everyone"] is False
    assert OutboxEvent.objects.filter(type="flag.changed", data__approval_request=request.pk).count() == 3


def test_sandbox_may_not_switch_off_a_personalization_flag(api, persona):
    new_flag("next_best_offer", personalization=True, everyone=True)
    start = last_event_id()

    response = api("admin").patch("/api/v1/flags/next_best_offer", {"everyone": False}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "personalization_flag_needs_approval"
    assert "production" in response.json()["hint"]
    assert Flag.objects.get(name="next_best_offer").everyone is True
    assert list(since(start).values_list("action", "outcome")) == [("flag.disable_personalization", "denied")]
    # a change that switches it off for no one is an ordinary change, even from the sandbox
    widened = api("admin").patch("/api/v1/flags/next_best_offer", {"percent": 50}, format="json")
    assert widened.status_code == 200 and widened.json()["changed"] is True


def test_an_ordinary_flag_is_switched_off_at_once_in_production(persona, production):
    new_flag("beta_preview", everyone=True)
    outcome = flag_set(
        actor=Actor(user=persona("admin"), environment=production), flag_name="beta_preview", everyone=False
    )
    assert outcome.approval is None and outcome.result is not None and outcome.result.changed


def test_an_operator_at_a_shell_is_not_stopped_but_audited(production):
    new_flag("next_best_offer", personalization=True, everyone=True)
    with pytest.raises(PersonalizationFlagNeedsApproval):
        flag_set(
            actor=Actor(
                user=UserFactory(username="admin-sbx", groups=["admin"]),
                environment=Environment.objects.get(slug="sandbox"),
            ),
            flag_name="next_best_offer",
            everyone=False,
        )
    outcome = flag_set(actor=Actor.system(production), flag_name="next_best_offer", everyone=False, percent=KEEP)
    assert outcome.result is not None and outcome.result.changed
    assert AuditEvent.objects.filter(action="flag.disable_personalization", door="cli").count() == 1


def test_a_second_switch_off_while_one_waits_is_refused(persona, production):
    new_flag("next_best_offer", personalization=True, everyone=True)
    admin = bearer(persona("admin"), production)
    first = admin.patch("/api/v1/flags/next_best_offer", {"everyone": False}, format="json")
    assert first.status_code == 202
    start = last_event_id()

    again = admin.patch("/api/v1/flags/next_best_offer", {"percent": 10, "everyone": None}, format="json")

    assert again.status_code == 409, again.json()
    assert again.json()["code"] == "approval_pending"
    assert again.json()["approval_url"] == first.json()["approval"]["url"]
    assert ApprovalRequest.objects.filter(action="flag.disable_personalization").count() == 1
    assert not since(start).exists()


# --- around the services ---------------------------------------------------------------------------------


def test_a_change_around_the_services_is_in_the_history_not_in_the_audit_trail(production):
    # The admin, the API and the executor go through governance/flags/services.py; a shell
    # that saves a flag itself leaves only the field history (no after-the-fact auditing).
    flag = new_flag("beta_preview", everyone=None)
    start = last_event_id()
    outbox_start = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    flag.everyone = True
    flag.save()
    Switch.objects.create(name="maintenance", active=True)

    assert not since(start).exists()
    assert not OutboxEvent.objects.filter(id__gt=outbox_start, type="flag.changed").exists()
    assert flag.history.first().everyone is True


def test_changing_an_unknown_flag_tells_a_role_that_may_not_change_flags_only_that(api):
    """Issue 12: PATCH /flags/<unknown> listed every flag name in its hint to any role."""
    from waffle.models import Flag

    Flag.objects.create(name="secret_project_x")

    refused = api("analyst").patch("/api/v1/flags/no-such-flag", {"everyone": True}, format="json")
    missing = api("admin").patch("/api/v1/flags/no-such-flag", {"everyone": True}, format="json")

    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert "secret_project_x" not in refused.content.decode()
    assert missing.status_code == 404 and missing.json()["code"] == "flag_not_found"
    assert "secret_project_x" not in missing.content.decode() and "GET /api/v1/flags/" in missing.json()["hint"]
