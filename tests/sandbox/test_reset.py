"""sandbox_reset, the service and the command: what it loads, replaces, refuses and records."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audiences.models import AudienceVersion, Consent, ConsentChange, Membership, Profile, ProfileEvent
from governance.actors import Actor
from governance.models import AuditEvent, Door, Environment, OutboxEvent, Outcome
from governance.policy import PolicyDenied
from sandbox.generator import RESERVED_EMAIL_DOMAINS, RESERVED_PHONE_PATTERN, SandboxData
from sandbox.scenarios import LOCALE_AND_NULL_EDGE_CASES, SCENARIOS
from sandbox.services import EnvironmentNotSynthetic, sandbox_reset
from tests.factories import AudienceFactory, AudienceVersionFactory, ConsentFactory, ProfileEventFactory, ProfileFactory

N = 300
ANCHOR = date(2026, 3, 2)


def reset(environment: Environment, *, profiles: int = N, seed: int = 5, actor: Actor | None = None):
    return sandbox_reset(
        actor=actor or Actor.system(environment, door=Door.CLI),
        environment=environment,
        profiles=profiles,
        seed=seed,
        anchor=ANCHOR,
    )


def stored_digest(environment: Environment) -> str:
    """SHA-256 over the environment's stored rows, ids left out (they differ per load)."""
    h = hashlib.sha256()
    ext = dict(Profile.objects.filter(environment=environment).values_list("id", "external_id"))
    fields = [f.name for f in Profile._meta.fields if f.name not in ("id", "environment")]
    for row in Profile.objects.filter(environment=environment).order_by("external_id").values_list(*fields):
        h.update(repr([json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in row]).encode())
    for model, columns in (
        (Consent, ("channel", "status", "source", "captured_at", "updated_at")),
        (ConsentChange, ("channel", "previous_status", "status", "source", "captured_at", "recorded_at")),
        (ProfileEvent, ("type", "occurred_at", "properties", "received_at")),
    ):
        rows = sorted(
            (ext[pid], *[json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v) for v in rest])
            for pid, *rest in model.objects.filter(profile__environment=environment).values_list("profile_id", *columns)
        )
        h.update(repr(rows).encode())
    return h.hexdigest()


def test_reset_loads_random_and_scenario_profiles_with_consent_ledger_and_events(sandbox):
    summary = reset(sandbox)

    scenario_count = sum(len(s.profiles) for s in SCENARIOS)
    profiles = Profile.objects.filter(environment=sandbox)
    consents = Consent.objects.filter(profile__environment=sandbox)
    assert profiles.count() == N + scenario_count == summary.loaded["profiles"]
    assert profiles.filter(external_id__startswith="sbx-").count() == N
    assert consents.count() == summary.loaded["consents"] > 3 * N
    # every stored consent has exactly one ledger row: its first capture, from the sandbox
    ledger = ConsentChange.objects.filter(profile__environment=sandbox)
    assert ledger.count() == consents.count() == summary.loaded["consent_changes"]
    assert set(ledger.values_list("previous_status", "source").distinct()) == {(None, "sandbox")}
    assert ProfileEvent.objects.filter(profile__environment=sandbox).count() == summary.loaded["profile_events"]
    assert summary.method == ("copy" if connection.vendor == "postgresql" else "batched")


def test_every_stored_email_is_on_a_reserved_test_domain(sandbox):
    reset(sandbox)

    emails = list(Profile.objects.filter(environment=sandbox, email__isnull=False).values_list("email", flat=True))
    phones = list(Profile.objects.filter(environment=sandbox, phone__isnull=False).values_list("phone", flat=True))
    assert len(emails) > 0.9 * N
    assert [e for e in emails if e.lower().rsplit("@", 1)[1] not in RESERVED_EMAIL_DOMAINS] == []
    assert [p for p in phones if not RESERVED_PHONE_PATTERN.match(p)] == []


def test_same_seed_stores_identical_rows_and_another_seed_other_rows(sandbox):
    reset(sandbox, seed=5)
    first = stored_digest(sandbox)
    reset(sandbox, seed=5)
    again = stored_digest(sandbox)
    reset(sandbox, seed=6)
    other = stored_digest(sandbox)

    assert first == again
    assert other != first
    assert (
        SandboxData(seed=5, profiles=N, anchor=ANCHOR).digest()
        == SandboxData(seed=5, profiles=N, anchor=ANCHOR).digest()
    )


def test_text_that_needs_escaping_is_stored_exactly(sandbox):
    # the COPY path escapes tabs, newlines and backslashes; the SQLite path must agree
    reset(sandbox, profiles=0)

    edge = LOCALE_AND_NULL_EDGE_CASES
    for number, expected in enumerate(edge.profiles, start=1):
        stored = Profile.objects.get(environment=sandbox, external_id=edge.external_id(number))
        assert (stored.first_name, stored.last_name, stored.locale, stored.attributes) == (
            expected.first_name,
            expected.last_name,
            expected.locale,
            expected.attributes,
        )
    event = ProfileEvent.objects.get(profile__external_id=edge.external_id(10))
    assert event.properties == {"path": "/search?q=50%25+off&tab=\t"}


def test_reset_replaces_the_environment_rather_than_appending(sandbox, pilot):
    # given an environment already holding data, and another environment with its own
    old = ProfileFactory(environment=sandbox, external_id="cust-old")
    ConsentFactory(profile=old)
    ProfileEventFactory(profile=old)
    kept = ProfileFactory(environment=pilot, external_id="cust-pilot")
    ConsentFactory(profile=kept)
    reset(sandbox, profiles=50)

    # when it is reset twice
    summary = reset(sandbox, profiles=40)

    # then only the last load is there, and the other environment is untouched
    assert not Profile.objects.filter(external_id="cust-old").exists()
    assert (
        Profile.objects.filter(environment=sandbox).count()
        == summary.loaded["profiles"]
        == 40 + summary.scenario_profiles
    )
    assert summary.deleted["profiles"] == 50 + summary.scenario_profiles
    assert summary.deleted["consents"] > 0 and summary.deleted["profile_events"] > 0
    assert Profile.objects.filter(environment=pilot).count() == 1
    assert Consent.objects.filter(profile=kept).count() == 1


def test_rows_of_other_tables_that_point_at_the_profiles_go_too(sandbox):
    # given a published version whose members are sandbox profiles
    reset(sandbox, profiles=5)
    audience = AudienceFactory(environment=sandbox, name="All", rules={"all": []})
    version = AudienceVersionFactory(audience=audience, memberships=Profile.objects.filter(environment=sandbox)[:3])

    # when the sandbox is reset
    reset(sandbox, profiles=5)

    # then the memberships went with their profiles; the definitions stay
    assert not Membership.objects.filter(version=version).exists()
    assert AudienceVersion.objects.filter(pk=version.pk).exists()


def test_each_reset_writes_one_audit_event_and_one_outbox_event(sandbox):
    audits = AuditEvent.objects.filter(action="sandbox.reset")
    events = OutboxEvent.objects.filter(type="sandbox.reset")

    summary = reset(sandbox, seed=9)
    reset(sandbox, seed=10)

    assert audits.count() == 2 and events.count() == 2
    audit = audits.order_by("id").first()
    assert audit.id == summary.audit_event_id
    assert (audit.outcome, audit.door, audit.actor_label, audit.environment) == (
        Outcome.ALLOWED,
        Door.CLI,
        "system (cli)",
        sandbox,
    )
    after = audit.changes["after"]
    assert after["seed"] == 9 and after["profiles"] == summary.loaded["profiles"]
    assert after["duration_seconds"] >= 0 and after["anchor"] == ANCHOR.isoformat()
    event = events.order_by("id").first()
    assert event.environment == sandbox
    assert event.data["seed"] == 9 and event.data["counts"] == summary.loaded
    assert len(event.data["scenarios"]) == 6


def test_a_non_synthetic_environment_is_refused_and_left_alone(production):
    # given production data
    customer = ProfileFactory(environment=production, external_id="real-1")

    # when the system tries to reset it
    with pytest.raises(EnvironmentNotSynthetic) as refused:
        reset(production)

    # then it refuses, naming the environment and why, keeps the data and records the attempt
    assert "'production'" in refused.value.detail and "real" in refused.value.detail
    assert refused.value.code == "environment_not_synthetic"
    assert Profile.objects.filter(pk=customer.pk).exists()
    denied = AuditEvent.objects.get(action="sandbox.reset")
    assert (denied.outcome, denied.environment) == (Outcome.DENIED, production)
    assert not OutboxEvent.objects.filter(type="sandbox.reset").exists()


def test_a_user_without_the_permission_is_denied_and_the_attempt_audited(sandbox, actor):
    analyst = actor("analyst")

    with pytest.raises(PolicyDenied):
        reset(sandbox, actor=analyst)

    denied = AuditEvent.objects.get(action="sandbox.reset")
    assert (denied.outcome, denied.actor_user) == (Outcome.DENIED, analyst.user)
    assert not Profile.objects.filter(environment=sandbox).exists()


def test_an_admin_may_reset_the_sandbox_but_not_another_environment(sandbox, pilot, actor):
    summary = reset(sandbox, profiles=10, actor=actor("admin"))
    assert summary.loaded["profiles"] == 10 + summary.scenario_profiles

    with pytest.raises(PolicyDenied):
        reset(pilot, profiles=10, actor=actor("admin"))  # acts in sandbox, targets pilot


def test_command_resets_and_reports(sandbox):
    out = StringIO()

    call_command("sandbox_reset", "--environment", "sandbox", "--profiles", "120", "--seed", "3", stdout=out)

    assert Profile.objects.filter(environment=sandbox, external_id__startswith="sbx-").count() == 120
    assert "seed 3" in out.getvalue()
    audit = AuditEvent.objects.get(action="sandbox.reset")
    assert (audit.door, audit.actor_user) == (Door.CLI, None)


def test_command_if_empty_leaves_a_loaded_environment_alone(sandbox):
    call_command("sandbox_reset", "--profiles", "30", "--if-empty", stdout=StringIO())
    loaded = set(Profile.objects.filter(environment=sandbox).values_list("id", flat=True))
    out = StringIO()

    call_command("sandbox_reset", "--profiles", "80", "--if-empty", stdout=out)

    assert set(Profile.objects.filter(environment=sandbox).values_list("id", flat=True)) == loaded
    assert "already has" in out.getvalue()
    assert AuditEvent.objects.filter(action="sandbox.reset").count() == 1


def test_command_refuses_production_with_a_clear_error(production):
    with pytest.raises(CommandError, match=r"'production'.*synthetic"):
        call_command("sandbox_reset", "--environment", "production", "--profiles", "10", "--if-empty")


def test_command_names_the_known_environments_for_an_unknown_one(db):
    with pytest.raises(CommandError, match="Known environments: sandbox, pilot, production"):
        call_command("sandbox_reset", "--environment", "uat")
