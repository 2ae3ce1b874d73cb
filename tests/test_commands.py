"""The operator's commands: seed_demo (demo users) and issue_token (API tokens from a shell)."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Profile
from governance.access.auth import BearerTokenAuthentication
from governance.access.services import MAX_TOKEN_DAYS
from governance.models import ApiToken, AuditEvent, hash_token
from governance.roles import ROLE_NAMES
from sandbox.management.commands.seed_demo import DEMO_USERS
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db

SECRET = re.compile(r"\bmk_sandbox_[A-Za-z0-9_-]{20,}")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- seed_demo --------------------------------------------------------------------


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    settings.MARKETERAPI_DEMO = False
    return settings


def roles_and_teams(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_seed_demo_creates_one_user_per_role_with_password_demo(debug):
    output = run("seed_demo")

    expected = {
        "demo-analyst": {"analyst"},
        "demo-operator": {"campaign_operator", "growth"},
        "demo-operator2": {"campaign_operator", "retention"},
        "demo-approver": {"approver"},
        "demo-approver2": {"approver"},
        "demo-compliance": {"compliance_reviewer"},
        "demo-developer": {"developer", "growth"},
        "demo-admin": {"admin"},
    }
    for username, groups in expected.items():
        assert roles_and_teams(username) == groups, username
        user = User.objects.get(username=username)
        assert user.check_password("demo")
        assert user.is_active
        assert not user.is_superuser
    staff = set(User.objects.filter(username__startswith="demo-", is_staff=True).values_list("username", flat=True))
    assert staff == {"demo-developer", "demo-admin"}
    # every role has a demo user
    assert {role for role, _, _ in DEMO_USERS.values()} == set(ROLE_NAMES)
    # and the output says how to get in
    assert "http://127.0.0.1:8000/login/" in output
    assert "/admin/" in output
    assert "issue_token demo-developer --environment sandbox" in output


def test_seed_demo_is_idempotent_and_undoes_changes_by_hand(debug):
    run("seed_demo")
    operator = User.objects.get(username="demo-operator")
    operator.set_password("changed")
    operator.is_staff = True
    operator.save()
    operator.groups.clear()

    output = run("seed_demo")

    assert "0 new, 9 reset" in output
    assert User.objects.filter(username__startswith="demo-").count() == len(DEMO_USERS)
    operator.refresh_from_db()
    assert operator.check_password("demo")
    assert not operator.is_staff
    assert roles_and_teams("demo-operator") == {"campaign_operator", "growth"}


def test_seed_demo_refuses_on_a_production_deployment(settings):
    settings.DEBUG = False
    settings.MARKETERAPI_DEMO = False

    with pytest.raises(CommandError, match=r"runs only on a development \(DEBUG=1\) or demo \(MARKETERAPI_DEMO=1\)"):
        run("seed_demo")

    assert not User.objects.filter(username__startswith="demo-").exists()


def test_seed_demo_runs_on_a_demo_deployment_without_debug(settings):
    settings.DEBUG = False
    settings.MARKETERAPI_DEMO = True

    run("seed_demo")

    assert User.objects.filter(username__startswith="demo-").count() == len(DEMO_USERS)


# --- issue_token ------------------------------------------------------------------


@pytest.fixture
def developer(persona):
    return persona("developer")


def test_issue_token_prints_the_secret_once_with_a_curl_example(developer):
    output = run("issue_token", developer.username, "--environment", "sandbox")

    secrets_printed = set(SECRET.findall(output))
    assert len(secrets_printed) == 1
    secret = secrets_printed.pop()
    assert f'curl -H "Authorization: Bearer {secret}" http://127.0.0.1:8000/api/v1/profiles/' in output
    assert "only time the secret is shown" in output


def test_the_token_is_stored_hashed_and_audited_as_a_cli_action(developer, sandbox):
    secret = run("issue_token", developer.username, "--environment", "sandbox", "--quiet").strip()

    token = ApiToken.objects.get(key_hash=hash_token(secret))
    assert token.user == developer
    assert token.environment == sandbox
    stored = [str(v) for v in ApiToken.objects.filter(pk=token.pk).values().get().values()]
    assert secret not in stored
    assert secret.startswith(token.prefix) and len(token.prefix) < len(secret) // 2
    event = AuditEvent.objects.get(action="token.create", target_id=str(token.pk))
    assert event.door == "cli"
    assert event.actor_user is None
    assert event.environment == sandbox


def test_the_printed_token_authenticates(developer):
    secret = run("issue_token", developer.username, "--environment", "sandbox", "--quiet").strip()

    request = RequestFactory().get("/api/v1/profiles/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    user, token = BearerTokenAuthentication().authenticate(request)

    assert user == developer
    assert token.environment.slug == "sandbox"


def test_the_printed_token_reads_a_profile_through_the_api(developer):
    profile = ProfileFactory()
    secret = run("issue_token", developer.username, "--environment", "sandbox", "--quiet").strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    listing = client.get("/api/v1/profiles/")
    detail = client.get(f"/api/v1/profiles/{profile.pk}")

    assert listing.status_code == 200, listing.content
    assert detail.status_code == 200, detail.content
    assert detail.json()["external_id"] == profile.external_id
    assert Profile.objects.filter(pk=detail.json()["id"]).exists()


def test_issue_token_name_days_and_scope(developer):
    secret = run(
        "issue_token",
        developer.username,
        "--environment",
        "sandbox",
        "--name",
        "ci",
        "--days",
        "7",
        "--scope",
        "read",
        "--quiet",
    ).strip()

    token = ApiToken.objects.get(key_hash=hash_token(secret))
    assert token.name == "ci"
    assert token.scopes == ["read"]
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)


def test_issue_token_for_an_unknown_user_says_how_to_create_one(db):
    with pytest.raises(CommandError, match=r"There is no user 'ghost'.*seed_demo"):
        run("issue_token", "ghost", "--environment", "sandbox")
    assert not ApiToken.objects.exists()


def test_issue_token_for_an_unknown_environment_lists_the_known_ones(developer):
    with pytest.raises(CommandError, match=r"There is no environment 'staging'.*sandbox, pilot, production"):
        run("issue_token", developer.username, "--environment", "staging")
    assert not ApiToken.objects.exists()


def test_issue_token_refuses_an_inactive_user(developer):
    developer.is_active = False
    developer.save()

    with pytest.raises(CommandError, match="not active"):
        run("issue_token", developer.username, "--environment", "sandbox")


def test_issue_token_passes_the_services_refusals_on(developer):
    too_long = str(MAX_TOKEN_DAYS + 1)

    with pytest.raises(CommandError, match=f"at most {MAX_TOKEN_DAYS} days"):
        run("issue_token", developer.username, "--environment", "sandbox", "--days", too_long)
