"""The policy engine as a table: role × action × environment × ownership → decision."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from governance import policy
from governance.access.objectperms import share
from governance.actors import Actor
from governance.models import AuditEvent, Door, Environment
from tests.conftest import issue_test_token
from tests.factories import AudienceFactory

# persona, action, environment, owner team of the target (None: no target), context → outcome, rule
TABLE = [
    ("analyst", "profile.view", "sandbox", None, {}, "allow", "role_permission"),
    ("analyst", "profile.view_pii", "sandbox", None, {}, "deny", "role_permission"),
    ("compliance", "profile.view_pii", "production", None, {}, "allow", "role_permission"),
    ("admin", "profile.view_pii", "production", None, {}, "deny", "role_permission"),
    ("analyst", "profile.ingest", "sandbox", None, {}, "deny", "role_permission"),
    ("developer", "profile.ingest", "production", None, {}, "allow", "role_permission"),
    ("developer", "consent.sync", "pilot", None, {}, "allow", "role_permission"),
    ("operator", "consent.sync", "sandbox", None, {}, "deny", "role_permission"),
    ("analyst", "audience.create", "sandbox", None, {}, "deny", "role_permission"),
    ("operator", "audience.create", "production", None, {}, "allow", "role_permission"),
    ("developer", "audience.create", "sandbox", None, {}, "allow", "role_permission"),
    ("developer", "audience.create", "pilot", None, {}, "deny", "role_environment"),
    ("operator", "audience.edit", "sandbox", "growth", {}, "allow", "role_permission"),
    ("operator2", "audience.edit", "sandbox", "growth", {}, "deny", "object_permission"),
    ("admin", "audience.edit", "production", "growth", {}, "allow", "role_permission"),
    ("approver", "audience.edit", "sandbox", "growth", {}, "deny", "role_permission"),
    ("operator", "audience.publish", "sandbox", "growth", {"reach": 900_000}, "allow", "role_permission"),
    ("operator", "audience.publish", "pilot", "growth", {"reach": 50_000}, "allow", "role_permission"),
    ("operator", "audience.publish", "pilot", "growth", {"reach": 50_001}, "needs_approval", "approval_policy"),
    ("operator", "audience.publish", "production", "growth", {"reach": 60_000}, "needs_approval", "approval_policy"),
    (
        "operator",
        "audience.publish",
        "production",
        "growth",
        {"reach": 60_000, "approved_request": 7},
        "allow",
        "role_permission",
    ),
    ("operator2", "audience.publish", "production", "growth", {"reach": 10}, "deny", "object_permission"),
    ("operator", "audience.archive", "sandbox", "growth", {}, "allow", "role_permission"),
    ("operator", "audience.archive", "pilot", "growth", {}, "needs_approval", "approval_policy"),
    ("developer", "audience.publish", "sandbox", "growth", {}, "allow", "role_permission"),
    ("developer", "audience.publish", "production", "growth", {}, "deny", "role_environment"),
    ("nobody", "profile.view", "sandbox", None, {}, "deny", "role_permission"),
]


@pytest.mark.parametrize(("who", "action", "env", "team", "context", "outcome", "rule"), TABLE)
def test_policy_table(persona, who, action, env, team, context, outcome, rule):
    environment = Environment.objects.get(slug=env)
    target = AudienceFactory(environment=environment, owner_team__name=team) if team else None
    actor = Actor(user=persona(who), environment=environment, door=Door.API)

    decision = policy.decide(actor, action, target, context)

    assert (decision.outcome, decision.rule) == (outcome, rule), decision.reasons
    assert decision.reasons, "every decision explains itself"
    if outcome == "deny":
        assert decision.hint


def test_needs_approval_says_how_many_and_whom(persona, production):
    actor = Actor(user=persona("operator"), environment=production)
    decision = policy.decide(actor, "audience.archive", AudienceFactory(environment=production), {})
    assert decision.required_approvals == 2
    assert decision.approver_roles == [["approver"], ["developer", "admin"]]
    assert "2 approval" in decision.reasons[0]


def test_a_share_of_change_lets_another_team_edit(persona, sandbox):
    target = AudienceFactory(environment=sandbox, owner_team__name="growth")
    outsider = persona("operator2")
    actor = Actor(user=outsider, environment=sandbox)
    assert policy.decide(actor, "audience.edit", target).rule == "object_permission"

    share(target, Group.objects.get(name="retention"), "change")

    assert policy.decide(actor, "audience.edit", target).allowed


def test_a_share_of_view_does_not_let_anyone_edit(persona, sandbox):
    target = AudienceFactory(environment=sandbox, owner_team__name="growth")
    outsider = persona("operator2")
    share(target, outsider, "view")
    decision = policy.decide(Actor(user=outsider, environment=sandbox), "audience.edit", target)
    assert decision.rule == "object_permission"
    assert "growth" in decision.hint


def test_object_of_another_environment_is_refused(persona, sandbox, pilot):
    target = AudienceFactory(environment=pilot, owner_team__name="growth")
    decision = policy.decide(Actor(user=persona("admin"), environment=sandbox), "audience.edit", target)
    assert (decision.outcome, decision.rule) == ("deny", "environment")


def test_token_scope_limits_what_a_token_may_do(persona, sandbox):
    user = persona("developer")
    issue_test_token(user, sandbox)
    token = user.api_tokens.get()
    token.scopes = ["read"]
    actor = Actor(user=user, environment=sandbox, token=token)

    assert policy.decide(actor, "profile.view").allowed
    decision = policy.decide(actor, "profile.ingest")
    assert decision.rule == "token_scope"
    assert "'ingest'" in decision.hint


def test_a_token_never_has_more_rights_than_its_owner(persona, sandbox):
    user = persona("analyst")
    issue_test_token(user, sandbox)
    token = user.api_tokens.get()
    token.scopes = ["read", "write", "ingest", "admin", "publish", "export"]
    decision = policy.decide(Actor(user=user, environment=sandbox, token=token), "profile.ingest")
    assert decision.rule == "role_permission"


def test_inactive_user_is_refused(persona, sandbox):
    user = persona("admin")
    user.is_active = False
    decision = policy.decide(Actor(user=user, environment=sandbox), "profile.view")
    assert decision.rule == "inactive_user"


def test_system_actor_is_allowed_and_named(sandbox):
    decision = policy.decide(Actor.system(sandbox), "sandbox.reset", sandbox)
    assert decision.allowed and decision.rule == "system_actor"


def test_unknown_action_is_a_programming_error(persona, sandbox):
    with pytest.raises(policy.UnknownAction):
        policy.decide(Actor(user=persona("admin"), environment=sandbox), "audience.teleport")


def test_require_records_the_denied_attempt(persona, sandbox):
    actor = Actor(user=persona("analyst"), environment=sandbox, request_id="req_x")
    with pytest.raises(policy.PolicyDenied) as raised:
        policy.require(actor, "profile.ingest")
    assert raised.value.hint.startswith("Ask an admin")
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.request_id) == ("profile.ingest", "denied", "req_x")
    assert "developer" in event.reasons[0]


def test_hooks_from_domain_apps_can_refuse(persona, sandbox, monkeypatch):
    from governance.policy import engine

    hooks = list(engine._HOOKS)
    monkeypatch.setattr(engine, "_HOOKS", hooks)

    def no_sms_in_sandbox(actor, spec, target, context):
        if context.get("channel") == "sms":
            return policy.Decision(
                policy.DENY, "regional_restriction", ["SMS may not target this region."], hint="Use email."
            )
        return None

    policy.register_hook("audience.", no_sms_in_sandbox)
    actor = Actor(user=persona("operator"), environment=sandbox)
    assert policy.decide(actor, "audience.create", None, {"channel": "sms"}).rule == "regional_restriction"
    assert policy.decide(actor, "audience.create", None, {"channel": "email"}).allowed


@pytest.mark.slow
def test_every_action_is_known_whatever_a_process_imported():
    # A Celery worker imports neither the URL conf nor the API modules: the table must not
    # depend on them (governance/policy/actions.py).
    import subprocess
    import sys

    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'marketerapi.settings_test');"
        "django.setup(); from governance.policy import ACTIONS;"
        "print(sorted(a for a in ('webhook.create', 'destination.test', 'status.view', 'job.view',"
        " 'audience.rollback', 'environment.change') if a in ACTIONS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(
        sorted(
            ["webhook.create", "destination.test", "status.view", "job.view", "audience.rollback", "environment.change"]
        )
    )


def test_every_action_names_a_permission_that_exists(db):
    from django.contrib.auth.models import Permission

    named = {a.permission for a in policy.ACTIONS.values() if a.permission}
    existing = {
        f"{app}.{codename}" for app, codename in Permission.objects.values_list("content_type__app_label", "codename")
    }
    assert named - existing == set()


def test_a_person_with_no_role_may_not_read_the_audit_log_approvals_or_status(persona, sandbox):
    actor = Actor(user=persona("nobody"), environment=sandbox)
    for action in ("audit.view", "approval.view", "status.view"):
        decision = policy.decide(actor, action)
        assert (decision.outcome, decision.rule) == (policy.DENY, "role_permission")
        assert "You have: no role" in decision.reasons[0]
