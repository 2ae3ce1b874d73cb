"""Each governance service asks the policy engine exactly once on success (STYLE.md: one
decision, one audit event), whichever door calls it. A service that decided twice would
audit a refusal twice, or let a rule change between its two answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from waffle.models import Flag, Sample, Switch

from governance.access import services as access_services
from governance.actors import Actor
from governance.approvals import approval_approve, approval_cancel, approval_reject
from governance.audit.services import audit_log_export
from governance.configuration import services as config_services
from governance.flags import services as flag_services
from governance.models import ApprovalPolicy, Door, Environment, FlagMeta, QuotaPolicy
from governance.policy import engine
from tests.factories import UserFactory


@pytest.fixture
def decisions(monkeypatch) -> list[str]:
    """The actions the engine is asked about, in order."""
    asked: list[str] = []
    decide = engine.decide

    def counting(actor: Actor, action: str, *args: Any, **kwargs: Any) -> engine.Decision:
        asked.append(action)
        return decide(actor, action, *args, **kwargs)

    monkeypatch.setattr(engine, "decide", counting)
    return asked


@pytest.fixture
def admin(db, sandbox) -> Actor:
    return Actor(user=UserFactory(username="a-admin", groups=["admin"]), environment=sandbox, door=Door.ADMIN)


def _personalization_flag() -> Flag:
    flag = Flag.objects.create(name="next_best_offer", everyone=True)
    FlagMeta.objects.create(flag=flag, description="Offers", owner="growth", affects_personalization=True)
    return flag


def _switch_off_request(production: Environment) -> Any:
    _personalization_flag()
    requester = Actor(user=UserFactory(username="req", groups=["admin"]), environment=production)
    return flag_services.flag_set(actor=requester, flag_name="next_best_offer", everyone=False).approval


SERVICES: dict[str, tuple[str, Callable[[Actor, dict[str, Environment]], Any]]] = {
    "token_issue": ("token.create", lambda a, e: access_services.token_issue(actor=a, user=a.user, name="t")),
    "token_revoke": (
        "token.revoke",
        lambda a, e: access_services.token_revoke(
            actor=a, token=access_services.token_issue(actor=Actor.system(e["sandbox"]), user=a.user, name="t").token
        ),
    ),
    "service_account_create": (
        "service_account.create",
        lambda a, e: access_services.service_account_create(actor=a, username="crm", roles=["developer"]),
    ),
    "environment_save": (
        "environment.change",
        lambda a, e: config_services.environment_save(actor=a, environment=_renamed(e["sandbox"])),
    ),
    "approval_policy_save": (
        "approval_policy.create",
        lambda a, e: config_services.approval_policy_save(
            actor=a,
            approval_policy=ApprovalPolicy(environment=e["sandbox"], action="audience.publish", steps=[["approver"]]),
        ),
    ),
    "quota_policy_save": (
        "quota_policy.create",
        lambda a, e: config_services.quota_policy_save(
            actor=a, quota_policy=QuotaPolicy(name="q", action="export.create", period="day", limit=3)
        ),
    ),
    "team_save": ("team.create", lambda a, e: config_services.team_save(actor=a, team=Group(name="growth-2"))),
    "user_create": ("user.create", lambda a, e: config_services.user_create(actor=a, user=User(username="new"))),
    "user_change": ("user.change", lambda a, e: config_services.user_change(actor=a, user=_with_email("bea"))),
    "user_password_set": (
        "user.change",
        lambda a, e: config_services.user_password_set(actor=a, user=UserFactory(username="bea"), password="x-Pa55"),
    ),
    "user_access_set": (
        "user.access_change",
        lambda a, e: config_services.user_access_set(
            actor=a, user=UserFactory(username="bea"), roles=["analyst"], teams=[], is_active=True, is_staff=False
        ),
    ),
    "flag_set": (
        "flag.change",
        lambda a, e: flag_services.flag_set(actor=a, flag_name=Flag.objects.create(name="f").name, everyone=True),
    ),
    "flag_set (files a request)": (
        "flag.disable_personalization",
        lambda a, e: flag_services.flag_set(
            actor=Actor(user=a.user, environment=e["production"]),
            flag_name=_personalization_flag().name,
            everyone=False,
        ),
    ),
    "flag_create": ("flag.create", lambda a, e: flag_services.flag_create(actor=a, flag=Flag(name="new"))),
    "flag_delete": (
        "flag.delete",
        lambda a, e: flag_services.flag_delete(actor=Actor.system(e["sandbox"]), flag=Flag.objects.create(name="f")),
    ),
    "flag_meta_save": (
        "flag.meta_change",
        lambda a, e: flag_services.flag_meta_save(
            actor=a, meta=FlagMeta(flag=Flag.objects.create(name="f"), description="d", owner="growth")
        ),
    ),
    "switch_save": (
        "flag.change",
        lambda a, e: flag_services.switch_save(actor=a, switch=_toggled(Switch.objects.create(name="s"))),
    ),
    "switch_delete": (
        "flag.delete",
        lambda a, e: flag_services.switch_delete(
            actor=Actor.system(e["sandbox"]), switch=Switch.objects.create(name="s")
        ),
    ),
    "sample_save": ("flag.create", lambda a, e: flag_services.sample_save(actor=a, sample=Sample(name="s", percent=5))),
    "sample_delete": (
        "flag.delete",
        lambda a, e: flag_services.sample_delete(
            actor=Actor.system(e["sandbox"]), sample=Sample.objects.create(name="s", percent=5)
        ),
    ),
    "audit_log_export": ("audit.export", lambda a, e: list(audit_log_export(actor=a, params={}).chunks)),
    "approval_approve": (
        "approval.vote",
        lambda a, e: approval_approve(
            actor=Actor(user=UserFactory(username="ap", groups=["approver"]), environment=e["production"]),
            request=_switch_off_request(e["production"]),
        ),
    ),
    "approval_reject": (
        "approval.vote",
        lambda a, e: approval_reject(
            actor=Actor(user=UserFactory(username="ap", groups=["approver"]), environment=e["production"]),
            request=_switch_off_request(e["production"]),
            comment="Not now.",
        ),
    ),
    "approval_cancel": (
        "approval.cancel",
        lambda a, e: approval_cancel(actor=_requester(e["production"]), request=_switch_off_request(e["production"])),
    ),
}


def _renamed(environment: Environment) -> Environment:
    environment.name = "Sandbox (renamed)"
    return environment


def _with_email(username: str) -> User:
    user = UserFactory(username=username)
    user.email = "elsewhere@example.test"
    return user


def _toggled(switch: Switch) -> Switch:
    switch.active = not switch.active
    return switch


def _requester(production: Environment) -> Actor:
    return Actor(user=User.objects.get_or_create(username="req")[0], environment=production)


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_asks_the_policy_once(name, decisions, admin, sandbox, production):
    action, call = SERVICES[name]
    environments = {"sandbox": sandbox, "production": production}

    # Setup inside the call may ask too (a request is filed, a token issued to revoke):
    # those are listed first; the service's own action comes once, last.
    marker = len(decisions)
    call(admin, environments)

    asked = decisions[marker:]
    setup = {
        "approval_approve": ["flag.disable_personalization"],
        "approval_reject": ["flag.disable_personalization"],
        "approval_cancel": ["flag.disable_personalization"],
        "token_revoke": ["token.create"],
    }.get(name, [])
    assert asked == [*setup, action], asked
