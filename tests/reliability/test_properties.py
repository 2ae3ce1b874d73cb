"""Hypothesis over the rules language and the bulk payloads (issue 12, the suite that keeps
them closed): whatever a caller sends — a well-formed rule, a nearly well-formed one, or
junk — the answer is a result or a 4xx problem, never a 500 and never an exception out of
the validator or the compiler. `make reliability` runs these with more examples
(HYPOTHESIS_EXAMPLES); the quick suite skips them (slow)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.rules import ATTRIBUTES, EVENT_PROPERTY_OPERATORS, OPERATORS, validate

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "40"))
PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

ALL_OPERATORS = sorted({op for ops in OPERATORS.values() for op in ops} | set(EVENT_PROPERTY_OPERATORS))
text = st.text(max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
    st.sampled_from(["2026-01-01", "2026-11-01T10:00:00+16:00", "2026-11-01T10:00:00Z", "EU", "lapsed", "\x00"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=5), st.dictionaries(text, scalars, max_size=3))
attribute_names = st.one_of(st.sampled_from(sorted(ATTRIBUTES)), st.builds(lambda k: f"attributes.{k}", text), text)
condition = st.fixed_dictionaries(
    {"attr": attribute_names, "op": st.one_of(st.sampled_from(ALL_OPERATORS), text), "value": values}
)
consent = st.fixed_dictionaries(
    {"consent": st.one_of(st.sampled_from(["email", "sms", "push"]), text), "status": st.one_of(text, scalars)}
)
event = st.fixed_dictionaries(
    {
        "event": st.one_of(st.sampled_from(["purchase", "email_open"]), text),
        "within_days": st.one_of(st.integers(-5, 5000), scalars),
    },
    optional={"count": st.dictionaries(st.sampled_from(["gte", "lte", "eq"]), st.integers(-3, 10**12), max_size=2)},
)
leaf = st.one_of(condition, consent, event, values)
rules = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.fixed_dictionaries({"all": st.lists(children, max_size=4)}),
        st.fixed_dictionaries({"any": st.lists(children, max_size=4)}),
        st.fixed_dictionaries({"not": children}),
        st.dictionaries(st.sampled_from(["all", "any", "not", "attr", "op"]), children, max_size=3),
    ),
    max_leaves=12,
)


@PROFILE
@given(rules)
def test_the_validator_answers_every_rule_with_problems_never_an_exception(candidate: Any):
    result = validate(candidate)

    for problem in result.problems:
        assert problem.pointer == "" or problem.pointer.startswith("/")
        assert problem.code and problem.hint


@pytest.mark.django_db
@PROFILE
@given(rules=rules, channel=st.sampled_from(["email", "sms", "push", "fax"]))
def test_a_preview_of_any_rule_is_a_result_or_a_4xx_problem(api, rules: Any, channel: str):
    client = api("analyst")

    response = client.post("/api/v1/audiences/preview", {"rules": rules, "channel": channel}, format="json")

    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        body = response.json()
        assert body["code"] and body["hint"], body


profile = st.fixed_dictionaries(
    {"external_id": st.one_of(st.text(min_size=1, max_size=20), scalars)},
    optional={
        "email": st.one_of(text, scalars),
        "region": st.one_of(st.sampled_from(["EU", "NA", "APAC"]), scalars),
        "country": st.one_of(text, scalars),
        "lifecycle_stage": st.one_of(st.sampled_from(["lead", "customer", "lapsed"]), scalars),
        "attributes": st.one_of(st.dictionaries(text, values, max_size=4), scalars),
        "updated_at": st.one_of(st.just(datetime.now(UTC).isoformat()), scalars),
    },
)
bulk = st.one_of(
    st.fixed_dictionaries({"profiles": st.lists(profile, max_size=8)}),
    st.fixed_dictionaries({"profiles": values}),
    st.dictionaries(text, values, max_size=3),
)


@pytest.mark.django_db
@PROFILE
@given(payload=bulk)
def test_a_bulk_upsert_of_any_payload_is_applied_or_a_4xx_problem(api, payload: Any):
    client = api("developer")

    response = client.post("/api/v1/profiles/bulk", payload, format="json")

    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert response.json()["code"]
