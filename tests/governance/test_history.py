"""Field history (django-simple-history) of the governed models, beside the audit trail.

Every governed model keeps a history row per change naming who made it: through a
request (HistoryRequestMiddleware reads the signed-in or token user), or, outside a
request, from `_history_user` set by the code that makes the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import path
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.views import APIView
from simple_history.models import registered_models
from waffle.models import Flag, Sample, Switch

from audiences.models import Audience, RegionalRestriction, SuppressionList
from campaigns.models import Campaign
from governance.models import (
    ApiToken,
    ApprovalPolicy,
    ApprovalRequest,
    Environment,
    FlagMeta,
    QuotaPolicy,
    ServiceAccount,
    hash_token,
)
from integrations.models import Destination, WebhookSubscription
from tests.factories import CampaignFactory, UserFactory


def _env(slug: str = "sandbox") -> Environment:
    return Environment.objects.get(slug=slug)


def _token() -> ApiToken:
    user = UserFactory(username="history-token-user")
    return ApiToken.objects.create(
        environment=_env(), user=user, owner=user, name="t", prefix="mk_sandbox_hist", key_hash=hash_token("x")
    )


@dataclass(frozen=True)
class Governed:
    """How to make one object of a governed model and how to change it."""

    model: type
    make: Callable[[], Any]
    change: Callable[[Any], None]


def _set(**values: Any) -> Callable[[Any], None]:
    def change(obj: Any) -> None:
        for name, value in values.items():
            setattr(obj, name, value)
        obj.save()

    return change


GOVERNED: dict[str, Governed] = {
    "Environment": Governed(
        Environment, lambda: Environment.objects.create(slug="uat", name="UAT"), _set(purpose="acceptance tests")
    ),
    "ServiceAccount": Governed(
        ServiceAccount,
        lambda: ServiceAccount.objects.create(
            user=UserFactory(username="svc-crm"), owner=UserFactory(username="svc-owner")
        ),
        _set(description="The CRM's nightly sync"),
    ),
    "ApiToken": Governed(ApiToken, _token, _set(revoked_at=timezone.now())),
    "ApprovalPolicy": Governed(
        ApprovalPolicy,
        lambda: ApprovalPolicy.objects.create(environment=_env(), action="audience.publish", steps=[["approver"]]),
        _set(is_active=False),
    ),
    "ApprovalRequest": Governed(
        ApprovalRequest,
        lambda: ApprovalRequest.objects.create(
            environment=_env(),
            action="audience.publish",
            target_type="audiences.audience",
            target_id="1",
            summary="Publish Lapsed EU",
            requester=UserFactory(username="requester"),
            expires_at=timezone.now() + timedelta(hours=72),
        ),
        _set(state="cancelled"),
    ),
    "QuotaPolicy": Governed(
        QuotaPolicy,
        lambda: QuotaPolicy.objects.create(name="export-test", action="export.create", limit=5),
        _set(limit=10),
    ),
    "FlagMeta": Governed(
        FlagMeta,
        lambda: FlagMeta.objects.create(flag=Flag.objects.create(name="meta-flag"), description="d", owner="growth"),
        _set(affects_personalization=True),
    ),
    "Audience": Governed(
        Audience,
        lambda: Audience.objects.create(
            environment=_env(),
            name="Lapsed EU",
            owner_team=Group.objects.get_or_create(name="growth")[0],
            channel="email",
            purpose="winback",
            description="d",
        ),
        _set(description="Customers who lapsed in the EU"),
    ),
    "Campaign": Governed(
        Campaign,
        lambda: CampaignFactory(),
        _set(purpose="spring winback"),
    ),
    "SuppressionList": Governed(
        SuppressionList,
        lambda: SuppressionList.objects.create(environment=_env(), name="Complaints"),
        _set(description="People who complained"),
    ),
    "RegionalRestriction": Governed(
        RegionalRestriction,
        lambda: RegionalRestriction.objects.create(
            environment=_env(), region="EU", channel="sms", kind="blocked", description="No SMS in the EU"
        ),
        _set(is_active=False),
    ),
    "Destination": Governed(
        Destination,
        lambda: Destination.objects.create(environment=_env(), name="drop", adapter="file"),
        _set(config={"directory": "/var/drops", "format": "jsonl"}),
    ),
    "WebhookSubscription": Governed(
        WebhookSubscription,
        lambda: WebhookSubscription.objects.create(
            environment=_env(), url="https://hooks.example.test/in", secret_encrypted="x"
        ),
        _set(event_types=["audience.published"]),
    ),
    "Flag": Governed(Flag, lambda: Flag.objects.create(name="new-editor"), _set(everyone=True)),
    "Switch": Governed(Switch, lambda: Switch.objects.create(name="exports-on"), _set(active=True)),
    "Sample": Governed(Sample, lambda: Sample.objects.create(name="beta", percent=10), _set(percent=50)),
    "Group": Governed(
        Group,
        lambda: Group.objects.create(name="retention-emea"),
        lambda group: group.permissions.add(Permission.objects.get(codename="view_audience")),
    ),
}


def test_every_model_with_history_is_covered():
    """A model that gains history gets a row in GOVERNED, so its history is tested too."""
    tracked = {model.__name__ for model in registered_models.values() if not model._meta.auto_created}

    assert tracked - set(GOVERNED) == set(), "add these models to GOVERNED in tests/governance/test_history.py"


@pytest.mark.parametrize("name", sorted(GOVERNED))
def test_a_change_outside_a_request_records_history_with_history_user(db, name):
    spec = GOVERNED[name]
    engineer = UserFactory(username="platform-engineer")
    obj = spec.make()

    obj._history_user = engineer
    spec.change(obj)

    latest = obj.history.order_by("-history_id").first()
    assert latest.history_type == "~"
    assert latest.history_user == engineer
    assert obj.history.count() == 2  # created, then changed


def test_a_groups_permissions_are_part_of_its_history(db):
    group = Group.objects.create(name="retention-emea")
    view = Permission.objects.get(codename="view_audience")

    group.permissions.add(view)

    latest = group.history.order_by("-history_id").first()
    assert [row.permission for row in latest.permissions.all()] == [view]


# --- through a request: HistoryRequestMiddleware ----------------------------------


class ApplyChange(APIView):
    """A test-only API view: changes one governed object as the request's (token) user."""

    def post(self, request: Any, name: str) -> Response:
        spec = GOVERNED[name]
        obj = spec.model.objects.get(pk=request.data["pk"])
        spec.change(obj)
        return Response({"ok": True})


urlpatterns = [path("test-history/<str:name>", ApplyChange.as_view())]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("name", sorted(GOVERNED))
def test_a_change_through_an_api_request_records_the_token_user(api, name):
    spec = GOVERNED[name]
    obj = spec.make()
    client = api("admin")

    response = client.post(f"/test-history/{name}", {"pk": obj.pk}, format="json")

    assert response.status_code == 200, response.content
    latest = obj.history.order_by("-history_id").first()
    assert latest.history_type == "~"
    assert latest.history_user == client.user


def test_a_change_in_the_admin_site_records_the_signed_in_user(client, db):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    group = Group.objects.create(name="retention-emea")
    view = Permission.objects.get(codename="view_audience")

    response = client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": "retention-emea", "permissions": [view.pk]}
    )
    now = {"created_0": "2026-03-02", "created_1": "09:00:00", "modified_0": "2026-03-02", "modified_1": "09:00:00"}
    switch_response = client.post("/admin/waffle/switch/add/", {"name": "exports-on", "active": "on", **now})

    assert response.status_code == 302, response.content
    assert switch_response.status_code == 302, switch_response.content
    assert {row.history_user for row in group.history.all() if row.history_type == "~"} == {admin}
    assert Switch.objects.get(name="exports-on").history.get().history_user == admin
