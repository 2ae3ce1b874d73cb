"""The product's capability flags (issue 13): created by a data migration with owner and
description, on for everyone in a sandbox, elsewhere on for the teams an admin adds; a
capability whose flag is off is refused with `feature_disabled` and a hint naming the flag,
whether it is checked by its policy row or by governance.flags.require."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from governance import flags, policy
from governance.flags.capabilities import CAPABILITY_FLAGS, CHANNEL_SMS, EXPORTS_PII
from governance.flags.errors import FeatureDisabled
from governance.flags.services import flag_set
from governance.models import AuditEvent, FlagMeta, Outcome
from governance.policy.actions import ACTIONS, Action


@pytest.fixture(autouse=True)
def fresh_flag_cache():
    cache.clear()
    yield
    cache.clear()


def test_a_fresh_install_has_the_capability_flags_with_owner_and_description(db):
    metas = {meta.flag.name: meta for meta in FlagMeta.objects.select_related("flag")}
    assert set(CAPABILITY_FLAGS) <= set(metas)
    for name in CAPABILITY_FLAGS:
        assert metas[name].owner and metas[name].description and metas[name].on_in_sandbox
        flag = metas[name].flag
        assert (flag.everyone, flag.superusers) == (None, False)


def test_get_flags_lists_them_on_for_everyone_in_the_sandbox_and_off_elsewhere(api, pilot):
    in_sandbox = {f["name"]: f for f in api("analyst").get("/api/v1/flags/").json()["results"]}
    in_pilot = {f["name"]: f for f in api("operator", pilot).get("/api/v1/flags/").json()["results"]}

    for name in CAPABILITY_FLAGS:
        assert in_sandbox[name]["active"] is True
        assert in_sandbox[name]["reason"] == "on for everyone in the sandbox"
        assert in_sandbox[name]["description"] and in_sandbox[name]["owner"]
        assert in_pilot[name]["active"] is False


def test_require_refuses_a_team_the_flag_is_off_for_and_names_the_flag(actor, pilot, sandbox):
    growth_operator = actor("operator", pilot)
    retention_operator = actor("operator2", pilot)
    flag_set(actor=actor("admin", pilot), flag_name=CHANNEL_SMS, groups=["growth"])

    flags.require(growth_operator, CHANNEL_SMS)  # on for growth
    flags.require(actor("operator2", sandbox), CHANNEL_SMS)  # on for everyone in the sandbox
    with pytest.raises(FeatureDisabled) as refused:
        flags.require(retention_operator, CHANNEL_SMS)

    problem = refused.value.as_problem()
    assert problem["status"] == 403 and problem["code"] == "feature_disabled"
    assert "ask an admin to turn on channel_sms for your team" in problem["hint"].lower()


def test_a_policy_row_with_a_flag_refuses_through_the_engine_with_the_same_problem(actor, pilot, monkeypatch):
    monkeypatch.setitem(
        ACTIONS, "test.capability", Action("test.capability", None, "Use the capability", flag=EXPORTS_PII)
    )
    growth_operator, retention_operator = actor("operator", pilot), actor("operator2", pilot)
    flag_set(actor=actor("admin", pilot), flag_name=EXPORTS_PII, groups=["growth"])

    assert policy.decide(growth_operator, "test.capability").allowed
    with pytest.raises(FeatureDisabled) as refused:
        policy.require(retention_operator, "test.capability")

    assert refused.value.code == "feature_disabled"
    assert "turn on exports_pii for your team" in refused.value.hint
    denied = AuditEvent.objects.filter(action="test.capability", outcome=Outcome.DENIED).get()
    assert "exports_pii" in " ".join(denied.reasons)


def test_switched_off_for_everyone_it_is_off_in_the_sandbox_too(actor, sandbox):
    flag_set(actor=actor("admin", sandbox), flag_name=CHANNEL_SMS, everyone=False)
    with pytest.raises(FeatureDisabled):
        flags.require(actor("operator", sandbox), CHANNEL_SMS)
