"""Rule validation reports every problem at once, each with a pointer, a code and a hint."""

from __future__ import annotations

from audiences.rules import MAX_CONDITIONS, MAX_DEPTH, MAX_LIST, validate


def codes(rules, **kw):
    return [(p.pointer, p.code) for p in validate(rules, **kw).problems]


def test_the_example_of_the_contract_is_valid():
    rules = {
        "all": [
            {"attr": "region", "op": "in", "value": ["EU", "UK"]},
            {"consent": "email", "is": True},
            {
                "any": [
                    {"attr": "lifecycle_stage", "op": "eq", "value": "customer"},
                    {"event": "cart_abandoned", "within_days": 7, "min_count": 1},
                ]
            },
            {"not": {"in_audience": 42}},
        ]
    }
    assert validate(rules).valid


def test_every_problem_is_reported_at_once_with_pointers():
    rules = {
        "all": [
            {"attr": "regoin", "op": "eq", "value": "EU"},
            {"attr": "region", "op": "gt", "value": "EU"},
            {"attr": "region", "op": "eq", "value": "Europe"},
            {"consent": "fax", "is": True},
            {"event": "cart_abandoned", "within_days": 0},
        ]
    }
    result = validate(rules)
    assert [(p.pointer, p.code) for p in result.problems] == [
        ("/all/0/attr", "unknown_attribute"),
        ("/all/1/op", "operator_not_allowed"),
        ("/all/2/value", "unknown_value"),
        ("/all/3/consent", "unknown_channel"),
        ("/all/4/within_days", "bad_days"),
    ]
    first = result.problems[0]
    assert first.message == "unknown attribute 'regoin' — did you mean 'region'?"
    assert "eq, neq, in, not_in, is_null" in result.problems[1].hint
    assert "EU, UK, NA" in result.problems[2].hint


def test_operators_fit_each_type():
    assert codes({"attr": "created_at", "op": "contains", "value": "x"}) == [("/op", "operator_not_allowed")]
    assert codes({"attr": "created_at", "op": "before", "value": "not a date"}) == [("/value", "not_a_date")]
    assert validate({"attr": "created_at", "op": "between", "value": ["2026-01-01", "2026-02-01T00:00:00Z"]}).valid
    assert codes({"attr": "attributes.ltv", "op": "gt", "value": "ten"}) == [("/value", "not_a_number")]
    assert codes({"attr": "attributes.bad key", "op": "eq", "value": 1}) == [("/attr", "unknown_attribute")]


def test_shapes_and_unknown_keys():
    assert codes([]) == [("/", "rules_not_object")]
    assert codes({"all": {"attr": "region"}}) == [("/all", "not_a_list")]
    assert codes({"all": [{"atr": "region"}]}) == [("/all/0", "unknown_condition")]
    assert codes({"attr": "region", "op": "eq", "value": "EU", "vaule": 1}) == [("/vaule", "unknown_key")]
    assert codes({"all": [{"attr": "region", "consent": "email"}]}) == [("/all/0", "ambiguous_condition")]
    assert codes({"attr": "region", "op": "in", "value": []}) == [("/value", "not_a_list")]


def test_limits_on_depth_size_and_lists():
    deep = {"attr": "region", "op": "eq", "value": "EU"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"not": deep}
    assert ("/" + "/".join(["not"] * MAX_DEPTH), "too_deep") in codes(deep)
    wide = {"any": [{"consent": "email", "is": True}] * (MAX_CONDITIONS + 1)}
    assert ("/", "too_many_conditions") in codes(wide)
    long_list = {"attr": "country", "op": "in", "value": ["GB"] * (MAX_LIST + 1)}
    assert codes(long_list) == [("/value", "list_too_long")]


def test_in_audience_references_are_checked_for_environment_and_cycles():
    graph = {1: {"in_audience": 2}, 2: {"all": [{"in_audience": 3}]}, 3: {"consent": "email", "is": True}, 4: None}

    def lookup(ids):
        return {i: graph[i] for i in ids if i in graph}

    assert validate({"in_audience": 1}, audience_lookup=lookup, self_id=9).valid
    assert codes({"in_audience": 1}, audience_lookup=lookup, self_id=3) == [("/", "audience_cycle")]
    assert codes({"in_audience": 77}, audience_lookup=lookup, self_id=9) == [("/in_audience", "audience_not_found")]
    assert codes({"in_audience": 4}, audience_lookup=lookup, self_id=9) == [("/in_audience", "audience_not_published")]
