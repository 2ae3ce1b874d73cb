"""Every admin action goes through the service the API uses: it writes its audit event
(door `admin`, in the object's environment) and emits the domain event where the service
does. tests/integrations/test_admin_actions.py covers the integrations pages' actions."""

from __future__ import annotations

import pytest
from django.contrib import admin
from waffle.models import Flag, Sample, Switch

from governance.access.selectors import SESSION_ENVIRONMENT_KEY
from governance.models import ApprovalRequest, ApprovalState, AuditEvent, Door, Environment, FlagMeta, OutboxEvent
from tests.conftest import issue_test_token
from tests.factories import ApprovalRequestFactory, UserFactory

# Every action of every page outside audiences/ (whose pages have their own suite), and the
# test that covers it.
COVERED = {
    ("governance.environment", "act_here"): "test_act_here_changes_the_session_only",
    ("governance.apitoken", "revoke"): "test_revoke",
    ("governance.approvalrequest", "approve"): "test_approve",
    ("governance.approvalrequest", "reject"): "test_reject_asks_for_a_comment_then_rejects",
    ("waffle.flag", "switch_on_for_everyone"): "test_switch_a_flag_on_for_everyone",
    ("waffle.flag", "switch_off_for_everyone"): "test_switching_off_a_personalization_flag_files_a_request",
    ("waffle.flag", "delete_flags"): "test_delete_a_flag",
    ("waffle.switch", "enable_switches"): "test_switch_and_sample_actions",
    ("waffle.switch", "disable_switches"): "test_switch_and_sample_actions",
    ("waffle.switch", "delete_individually"): "test_switch_and_sample_actions",
    ("waffle.sample", "delete_individually"): "test_switch_and_sample_actions",
    ("integrations.destination", "test_connection"): "tests/integrations/test_admin_actions.py",
    ("integrations.destination", "reset_breaker"): "tests/integrations/test_admin_actions.py",
    ("integrations.destination", "switch_on"): "tests/integrations/test_admin_actions.py",
    ("integrations.destination", "switch_off"): "tests/integrations/test_admin_actions.py",
    ("integrations.destinationpush", "retry_now"): "tests/integrations/test_admin_actions.py",
    ("integrations.webhooksubscription", "pause"): "tests/integrations/test_admin_actions.py",
    ("integrations.webhooksubscription", "resume"): "tests/integrations/test_admin_actions.py",
    ("integrations.deadletter", "replay"): "tests/integrations/test_admin_actions.py",
    ("integrations.deadletter", "discard"): "tests/integrations/test_admin_actions.py",
    ("campaigns.campaign", "activate"): "tests/campaigns/test_admin.py",
    ("campaigns.campaign", "pause"): "tests/campaigns/test_admin.py",
    ("campaigns.campaign", "resume"): "tests/campaigns/test_admin.py",
    ("campaigns.campaign", "cancel"): "tests/campaigns/test_admin.py",
    ("campaigns.reviewitem", "retry"): "tests/campaigns/test_admin.py",
    ("campaigns.reviewitem", "cancel"): "tests/campaigns/test_admin.py",
}


@pytest.fixture
def platform_admin(db):
    """Role admin and staff, not a superuser: what the actions may do comes from the role."""
    return UserFactory(username="platform-admin", is_staff=True, groups=["admin"])


@pytest.fixture
def site(client, platform_admin):
    client.force_login(platform_admin)
    return client


def _act(site, url: str, action: str, objects, follow: bool = True, **extra):
    return site.post(url, {"action": action, "_selected_action": [o.pk for o in objects], **extra}, follow=follow)


_since: dict[str, int] = {"audit": 0, "outbox": 0}


def _mark() -> None:
    """Count only what happens from here on (rows made by the test's setup are audited too)."""
    _since["audit"] = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    _since["outbox"] = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.fixture(autouse=True)
def _from_the_start(db):
    _since.update(audit=0, outbox=0)


def _events(action: str, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, id__gt=_since["audit"], **filters).order_by("id"))


def _outbox(event_type: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(type=event_type, id__gt=_since["outbox"]).order_by("id"))


def test_every_action_has_a_test(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    request = client.get("/admin/").wsgi_request

    found = set()
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label == "audiences":
            continue
        for name in model_admin.get_actions(request):
            found.add((model._meta.label_lower, name))

    assert found - set(COVERED) == set(), "add a test of these actions and list it in COVERED"
    assert set(COVERED) - found == set(), "COVERED names actions that no longer exist"


# --- governance ------------------------------------------------------------------------------


def test_act_here_changes_the_session_only(site, production):
    before = AuditEvent.objects.count(), OutboxEvent.objects.count()

    response = _act(site, "/admin/governance/environment/", "act_here", [production])

    assert "acting in production" in response.content.decode()
    assert site.session[SESSION_ENVIRONMENT_KEY] == "production"
    # a choice of the person's session, not a change of governed data
    assert (AuditEvent.objects.count(), OutboxEvent.objects.count()) == before


def test_revoke(site, pilot, platform_admin):
    owner = UserFactory(username="integrator", groups=["developer"])
    issue_test_token(owner, pilot)
    token = owner.api_tokens.get()

    _act(site, "/admin/governance/apitoken/", "revoke", [token])

    token.refresh_from_db()
    assert token.revoked_at is not None
    (event,) = _events("token.revoke")
    assert (event.door, event.actor_user, event.environment, event.outcome) == (
        Door.ADMIN,
        platform_admin,
        pilot,
        "allowed",
    )
    assert not OutboxEvent.objects.exists()  # token_revoke emits no domain event


def test_approve(site, pilot, platform_admin):
    request = ApprovalRequestFactory(
        environment=pilot, requester=UserFactory(username="op", groups=["campaign_operator"])
    )

    page = _act(site, "/admin/governance/approvalrequest/", "approve", [request])
    assert "Approve 1 request(s)" in page.content.decode()
    assert not _events("approval.approve")

    response = _act(
        site,
        "/admin/governance/approvalrequest/",
        "approve",
        [request],
        vote_comment_sent="yes",
        comment="Checked with the team",
    )

    assert "Approved (1 of 2). Still needed: an approver" in response.content.decode()
    request.refresh_from_db()
    assert request.state == ApprovalState.PENDING
    vote = request.votes.get()
    assert (vote.voter, vote.decision, vote.role, vote.comment) == (
        platform_admin,
        "approve",
        "admin",
        "Checked with the team",
    )
    (event,) = _events("approval.approve")
    assert (event.door, event.environment, event.outcome) == (Door.ADMIN, pilot, "allowed")
    (decided,) = _outbox("approval.decided")
    assert decided.environment == pilot
    assert (decided.data["step"], decided.data["by"], decided.data["received"]) == ("approve", "platform-admin", 1)


def test_reject_asks_for_a_comment_then_rejects(site, pilot, platform_admin):
    request = ApprovalRequestFactory(
        environment=pilot, requester=UserFactory(username="op", groups=["campaign_operator"])
    )
    url = "/admin/governance/approvalrequest/"

    without = _act(site, url, "reject", [request], vote_comment_sent="yes", comment=" ")
    assert "This field is required." in without.content.decode()
    assert not _events("approval.reject")

    response = _act(site, url, "reject", [request], vote_comment_sent="yes", comment="Not before the sale ends")

    assert "Rejected: request" in response.content.decode()
    request.refresh_from_db()
    assert request.state == ApprovalState.REJECTED
    (event,) = _events("approval.reject")
    assert (event.door, event.actor_user, event.environment) == (Door.ADMIN, platform_admin, pilot)
    assert event.changes["comment"] == "Not before the sale ends"
    (decided,) = _outbox("approval.decided")
    assert (decided.data["step"], decided.data["state"]) == ("reject", "rejected")


def test_approving_ones_own_request_is_refused_and_the_attempt_audited(site, pilot, platform_admin):
    request = ApprovalRequestFactory(environment=pilot, requester=platform_admin)

    response = _act(
        site, "/admin/governance/approvalrequest/", "approve", [request], vote_comment_sent="yes", comment=""
    )

    assert f"#{request.pk}: " in response.content.decode()
    assert not request.votes.exists()
    (denied,) = _events("approval.approve")
    assert (denied.outcome, denied.door, denied.changes["code"]) == ("denied", Door.ADMIN, "self_approval")
    assert not _outbox("approval.decided")


def test_switch_a_flag_on_for_everyone(site, sandbox, platform_admin):
    flag = Flag.objects.create(name="beta_banner", everyone=False)
    _mark()

    _act(site, "/admin/waffle/flag/", "switch_on_for_everyone", [flag])

    flag.refresh_from_db()
    assert flag.everyone is True
    (event,) = _events("flag.change")
    assert (event.door, event.actor_user, event.environment) == (Door.ADMIN, platform_admin, sandbox)
    assert (event.changes["before"]["everyone"], event.changes["after"]["everyone"]) == (False, True)
    # a flag is global: every environment hears of it
    announced = _outbox("flag.changed")
    assert {e.environment_id for e in announced} == set(Environment.objects.values_list("id", flat=True))
    assert all(e.data["door"] == Door.ADMIN for e in announced)


def test_switching_off_a_personalization_flag_files_a_request(site, production, platform_admin):
    flag = Flag.objects.create(name="next_best_offer", everyone=True)
    FlagMeta.objects.create(flag=flag, description="Offers", owner="growth", affects_personalization=True)
    session = site.session
    session[SESSION_ENVIRONMENT_KEY] = "production"
    session.save()
    _mark()

    response = _act(site, "/admin/waffle/flag/", "switch_off_for_everyone", [flag])

    flag.refresh_from_db()
    assert flag.everyone is True  # until approved
    filed = ApprovalRequest.objects.get(action="flag.disable_personalization")
    assert f"approval request #{filed.pk} filed" in response.content.decode()
    (event,) = _events("flag.disable_personalization")
    assert (event.outcome, event.door, event.environment) == ("approval_requested", Door.ADMIN, production)
    (requested,) = _outbox("approval.requested")
    assert requested.environment == production
    assert not _outbox("flag.changed")


def test_delete_a_flag(client, sandbox):
    # Deleting flags needs waffle.delete_flag, which no role holds: a superuser's action,
    # through flag_delete (policy action flag.delete).
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    flag = Flag.objects.create(name="old_banner", everyone=True)
    _mark()

    _act(client, "/admin/waffle/flag/", "delete_flags", [flag])

    assert not Flag.objects.filter(name="old_banner").exists()
    (event,) = _events("flag.delete")
    assert (event.door, event.actor_user, event.environment, event.outcome) == (Door.ADMIN, root, sandbox, "allowed")
    assert (event.target_type, event.target_label) == ("waffle.flag", "old_banner")
    assert event.changes == {"before": {"name": "old_banner"}, "after": None}
    assert len(_outbox("flag.changed")) == Environment.objects.count()


def test_deleting_a_flag_is_refused_without_the_role_and_audited(site, platform_admin, sandbox):
    from governance.actors import Actor
    from governance.flags.services import flag_delete
    from governance.policy import PolicyDenied

    flag = Flag.objects.create(name="old_banner", everyone=True)
    _mark()

    # the admin role holds no waffle.delete_flag: the page does not offer the action …
    _act(site, "/admin/waffle/flag/", "delete_flags", [flag])
    assert Flag.objects.filter(pk=flag.pk).exists() and not _events("flag.delete")
    # … and the service refuses it, audited
    with pytest.raises(PolicyDenied) as refused:
        flag_delete(actor=Actor(user=platform_admin, environment=sandbox, door=Door.ADMIN), flag=flag)

    assert refused.value.code == "permission_denied"
    assert Flag.objects.filter(pk=flag.pk).exists()
    (denied,) = _events("flag.delete")
    assert (denied.outcome, denied.door, denied.actor_user) == ("denied", Door.ADMIN, platform_admin)
    assert not _outbox("flag.changed")


def test_a_personalization_flag_is_never_deleted_even_by_a_superuser(client, sandbox):
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    flag = Flag.objects.create(name="next_best_offer", everyone=True)
    FlagMeta.objects.create(flag=flag, description="Offers", owner="growth", affects_personalization=True)
    _mark()

    response = _act(client, "/admin/waffle/flag/", "delete_flags", [flag])

    assert Flag.objects.filter(pk=flag.pk).exists()
    assert "never deleted" in response.content.decode() or "affects personalization" in response.content.decode()
    (denied,) = _events("flag.delete")
    assert (denied.outcome, denied.door, denied.actor_user) == ("denied", Door.ADMIN, root)
    assert not _outbox("flag.changed")


def test_switch_and_sample_actions(client, sandbox):
    # Switches and samples go through their services (governance/flags/services.py): each
    # change and deletion is decided, audited and announced.
    root = UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"])
    client.force_login(root)
    switch = Switch.objects.create(name="maintenance", active=False)
    sample = Sample.objects.create(name="sampled", percent=10)
    _mark()

    _act(client, "/admin/waffle/switch/", "enable_switches", [switch])
    _act(client, "/admin/waffle/switch/", "disable_switches", [switch])
    _act(client, "/admin/waffle/switch/", "delete_individually", [switch])
    _act(client, "/admin/waffle/sample/", "delete_individually", [sample])

    changes = _events("flag.change", door=Door.ADMIN, actor_user=root)
    assert [e.changes["after"]["active"] for e in changes] == [True, False]
    deletions = _events("flag.delete", door=Door.ADMIN, actor_user=root)
    assert [(e.target_type, e.changes["after"]) for e in deletions] == [
        ("waffle.switch", None),
        ("waffle.sample", None),
    ]
    assert len(_outbox("flag.changed")) == 4 * Environment.objects.count()
    assert not Switch.objects.exists() and not Sample.objects.exists()
