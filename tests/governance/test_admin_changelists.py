"""Every page of the admin site opens with rows present, searched and filtered; the
changelists of the main models cost the same number of queries however many rows they show
(no N+1); the large tables' changelists never read the whole table for a date hierarchy."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from waffle.models import Flag

from governance.models import (
    ApiToken,
    ApprovalRequest,
    ApprovalVote,
    AuditEvent,
    Door,
    FlagMeta,
    QuotaUsage,
    ServiceAccount,
)
from marketerapi.admin.large_tables import distinct_indexed_values
from tests.conftest import issue_test_token
from tests.factories import (
    ApprovalRequestFactory,
    DestinationFactory,
    JobFactory,
    UserFactory,
    WebhookSubscriptionFactory,
)
from tests.governance.test_admin import everything  # noqa: F401  (one row of every model)
from tests.governance.test_admin import platform_admin as platform_admin

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.usefixtures("clean_state")


@pytest.fixture
def root(client, db):
    """A superuser: every page, every filter, every add form."""
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"]))
    return client


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_changelist_opens_searched_filtered_and_by_date_and_every_add_page(root, everything):  # noqa: F811
    failures = []
    for model, model_admin in admin.site._registry.items():
        changelist = _url(model, "changelist")
        response = root.get(changelist)
        if response.status_code != 200:
            failures.append(f"{changelist}: {response.status_code}")
            continue
        cl = response.context["cl"]
        if not cl.result_count:
            failures.append(f"{changelist}: no rows (add one to the `everything` fixture)")
        if model_admin.get_search_fields(response.wsgi_request):
            searched = root.get(changelist, {"q": "ann"})
            if searched.status_code != 200:
                failures.append(f"{changelist}?q=ann: {searched.status_code}")
        # every choice of every filter, the first one besides "All"
        for spec in cl.filter_specs:
            choices = [c for c in spec.choices(cl) if not c.get("selected")]
            if not choices:
                continue
            query = choices[0]["query_string"]
            filtered = root.get(changelist + query)
            if filtered.status_code != 200 or "?e=1" in filtered.get("Location", ""):
                failures.append(f"{changelist}{query}: {filtered.status_code}")
        if cl.date_hierarchy:
            year = timezone.now().year
            by_date = root.get(changelist, {f"{cl.date_hierarchy}__year": year})
            if by_date.status_code != 200:
                failures.append(f"{changelist} by date: {by_date.status_code}")
        if model_admin.has_add_permission(response.wsgi_request):
            add = _url(model, "add")
            added = root.get(add)
            if added.status_code != 200:
                failures.append(f"{add}: {added.status_code}")
    assert not failures, "\n".join(failures)


def test_the_append_only_and_machine_written_models_are_read_only(root, everything):  # noqa: F811
    from governance.models import OutboxEvent
    from integrations.models import DeadLetter, DestinationPush, Job, WebhookDelivery

    request = root.get("/admin/").wsgi_request
    for model in (AuditEvent, QuotaUsage, ApprovalRequest, OutboxEvent, WebhookDelivery, DeadLetter, Job):
        model_admin = admin.site._registry[model]
        obj = model._default_manager.first()
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request, obj), model
        assert not model_admin.has_delete_permission(request, obj), model
    assert not admin.site._registry[DestinationPush].has_change_permission(request)


# --- the N+1 guard -----------------------------------------------------------------------------


_serial = itertools.count(1)


def _rows_for(model, sandbox, n: int) -> None:
    """n more rows of `model`, with their related rows."""
    from governance.models import OutboxEvent
    from integrations.destinations import breakers
    from integrations.models import (
        DeadLetter,
        DeliveryAttempt,
        Destination,
        DestinationPush,
        Job,
        WebhookDelivery,
        WebhookSubscription,
    )

    stamp = f"{model._meta.model_name}-{next(_serial)}"
    for i in range(n):
        key = f"{stamp}-{i}"
        user = UserFactory(username=f"u-{key}", groups=["developer", f"team-{key}"])
        if model is ApiToken:
            issue_test_token(user, sandbox)
        elif model is ServiceAccount:
            account = ServiceAccount.objects.create(user=user, owner=UserFactory(username=f"o-{key}"))
            issue_test_token(account.user, sandbox)
        elif model is ApprovalRequest:
            request = ApprovalRequestFactory(environment=sandbox, target_id=key, summary=key, requester=user)
            ApprovalVote.objects.create(request=request, voter=UserFactory(username=f"v-{key}"), decision="approve")
        elif model is AuditEvent:
            AuditEvent.objects.create(
                environment=sandbox,
                actor_user=user,
                actor_label=user.username,
                door=Door.API,
                action="x.y",
                outcome="allowed",
            )
        elif model is QuotaUsage:
            QuotaUsage.objects.create(quota="publish", subject=f"user:{user.pk}", period_start=timezone.now(), used=1)
        elif model is Flag:
            flag = Flag.objects.create(name=f"flag_{key}".replace("-", "_"))
            FlagMeta.objects.create(flag=flag, description=key, owner="growth")
        elif model is Group or model is type(user):
            pass  # the user and team made above
        elif model is OutboxEvent:
            OutboxEvent.objects.create(
                environment=sandbox, type="consent.updated", aggregate_type="x", aggregate_id=key
            )
        elif model in (WebhookSubscription, WebhookDelivery):
            hook = WebhookSubscriptionFactory(environment=sandbox, url=f"http://127.0.0.1:9/{key}")
            event = OutboxEvent.objects.create(
                environment=sandbox, type="consent.updated", aggregate_type="x", aggregate_id=key
            )
            delivery = WebhookDelivery.objects.create(subscription=hook, event=event)
            DeliveryAttempt.objects.create(delivery=delivery, attempt=1, status_code=500)
        elif model is DeadLetter:
            DeadLetter.objects.create(environment=sandbox, kind="webhook_delivery", reference_id=key, resolved_by=user)
        elif model in (Destination, DestinationPush):
            destination = DestinationFactory(environment=sandbox, name=key)
            breakers.Breaker.for_destination(destination).record_failure("503")
            job = JobFactory(environment=sandbox)
            DestinationPush.objects.create(
                destination=destination, job=job, kind="members", payload={"added": [{"external_id": "a"}]}
            )
            DestinationPush.objects.create(destination=destination, kind="send", payload={}, state="pending")
        elif model is Job:
            JobFactory(environment=sandbox, kind="export", failed=True, requested_by=user)
        else:  # pragma: no cover - a model added to MAIN_MODELS without rows here
            raise AssertionError(f"no rows for {model}")


def _main_models() -> list:
    from django.contrib.auth.models import User

    from governance.models import OutboxEvent
    from integrations.models import DeadLetter, Destination, DestinationPush, Job, WebhookDelivery, WebhookSubscription

    return [
        ApiToken,
        ServiceAccount,
        ApprovalRequest,
        AuditEvent,
        QuotaUsage,
        Flag,
        Group,
        User,
        OutboxEvent,
        WebhookSubscription,
        WebhookDelivery,
        DeadLetter,
        Destination,
        DestinationPush,
        Job,
    ]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


@pytest.mark.parametrize("model", _main_models(), ids=lambda m: m._meta.label)
def test_a_changelist_costs_the_same_queries_for_3_rows_as_for_15(root, sandbox, model):
    url = _url(model, "changelist")
    make: Callable[[int], None] = lambda n: _rows_for(model, sandbox, n)  # noqa: E731

    make(3)
    few = _queries(root, url)
    make(12)
    many = _queries(root, url)

    assert many == few, f"{model._meta.label}: {few} queries for 3 rows, {many} for 15"


# --- large tables: no SELECT DISTINCT or full count per page view ---------------------------


def test_the_audit_trail_changelist_reads_no_distinct_dates_and_no_full_count(root, sandbox):
    for i in range(3):
        AuditEvent.objects.create(
            environment=sandbox,
            actor_label="someone",
            door=Door.API,
            action=f"thing.{i}",
            outcome="allowed",
            occurred_at=timezone.now() - timedelta(days=400 * i),
        )

    with CaptureQueriesContext(connection) as queries:
        response = root.get("/admin/governance/auditevent/")

    sql = " ".join(q["sql"] for q in queries).upper()
    assert "DISTINCT" not in sql
    html = response.content.decode()
    now = timezone.now()
    for year in range((now - timedelta(days=800)).year, now.year + 1):
        assert f"occurred_at__year={year}" in html
    # the action filter lists the actions present
    for i in range(3):
        assert f"?action=thing.{i}" in html


def test_distinct_indexed_values_lists_each_value_once(sandbox):
    for action in ["b.x", "a.y", "b.x", "c.z", "a.y"]:
        AuditEvent.objects.create(environment=sandbox, door=Door.API, action=action, outcome="allowed")

    assert distinct_indexed_values(AuditEvent, "action") == ["a.y", "b.x", "c.z"]
    assert distinct_indexed_values(AuditEvent, "action", limit=2) == ["a.y", "b.x"]


@pytest.mark.parametrize("per_page", [100, 1], ids=["bounds-from-the-page", "bounds-from-the-first-and-last-id"])
def test_the_date_hierarchy_drills_down_within_the_rows_bounds(root, sandbox, monkeypatch, per_page):
    from integrations.admin.jobs import JobAdmin

    monkeypatch.setattr(JobAdmin, "list_per_page", per_page)

    first = timezone.now().replace(month=3, day=10, hour=12)
    JobFactory(environment=sandbox, kind="export", created_at=first)
    JobFactory(environment=sandbox, kind="export", created_at=first + timedelta(days=2))

    by_month = root.get("/admin/integrations/job/", {"created_at__year": first.year, "created_at__month": 3})
    html = by_month.content.decode()

    assert by_month.status_code == 200
    assert {int(d) for d in re.findall(r"created_at__day=(\d+)", html)} == {10, 11, 12}


def test_exact_search_fields_compare_exactly_and_typed(root, sandbox):
    from governance.models import OutboxEvent

    event = OutboxEvent.objects.create(
        environment=sandbox, type="consent.updated", aggregate_type="x", aggregate_id="7"
    )
    other = OutboxEvent.objects.create(
        environment=sandbox, type="consent.updated", aggregate_type="x", aggregate_id="8"
    )
    job = JobFactory(environment=sandbox, kind="export", target_type="audiences.audience", target_id="AbC")

    def found(url: str, term: str) -> list[int]:
        response = root.get(url, {"q": term})
        assert response.status_code == 200
        return [obj.pk for obj in response.context["cl"].result_list]

    assert found("/admin/governance/outboxevent/", event.public_id) == [event.pk]
    assert found("/admin/governance/outboxevent/", str(other.event_id)) == [other.pk]
    assert found("/admin/governance/outboxevent/", "7") == [event.pk]
    assert found("/admin/integrations/job/", str(job.pk)) == [job.pk]
    assert found("/admin/integrations/job/", "AbC") == [job.pk]
    assert found("/admin/integrations/job/", "abc") == []  # exact, as an index compares
    assert found("/admin/integrations/job/", "not-a-number") == []


def test_the_approval_action_filter_lists_the_actions_that_can_ask(root, everything):  # noqa: F811
    response = root.get("/admin/governance/approvalrequest/")

    (spec,) = [s for s in response.context["cl"].filter_specs if getattr(s, "parameter_name", "") == "action"]
    choices = {value for value, _ in spec.lookup_choices}
    assert {"audience.publish", "audience.archive", "export.create_pii"} <= choices


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner estimate")
def test_a_long_list_shows_the_planners_estimate_and_says_so(root, sandbox, monkeypatch):
    from marketerapi.admin import large_tables as admin_site

    monkeypatch.setattr(admin_site, "EXACT_COUNT_BELOW", 1)
    for i in range(3):
        AuditEvent.objects.create(environment=sandbox, door=Door.API, action=f"a.{i}", outcome="allowed")

    response = root.get("/admin/governance/auditevent/")

    assert response.status_code == 200
    assert response.context["cl"].paginator.estimated
    assert "PostgreSQL's estimate" in response.content.decode()


def test_on_sqlite_lists_are_counted_exactly(sandbox):
    from marketerapi.admin.large_tables import estimated_rows

    if connection.vendor == "postgresql":
        assert estimated_rows(AuditEvent.objects.all()) is not None
    else:
        assert estimated_rows(AuditEvent.objects.all()) is None
