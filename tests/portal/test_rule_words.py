"""Where a problem is, in words (portal/templatetags/rule_words.py): the portal says
"Condition 2 (event type)" where the API says `/rules/all/1/event` (issue 11, item 12)."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string

from portal.templatetags.rule_words import pointer_words
from portal.web import Problem

RULES = {
    "all": [
        {"attr": "region", "op": "eq", "value": "EU"},
        {"event": "purchase", "where": [{"property": "total", "op": "gt", "value": 50}]},
        {"any": [{"consent": "email"}, {"not": {"in_audience": 12}}]},
        {"not": {"any": [{"attr": "country", "op": "eq", "value": "FR"}]}},
    ]
}


@pytest.mark.parametrize(
    ("pointer", "words"),
    [
        ("/rules/all/1/event", "Condition 2 (event type)"),
        ("/rules/all/0/value", "Condition 1 (value)"),
        ("/rules/all/0/value/2", "Condition 1 (value 3)"),
        ("/rules/all/1/where/0/value", "Condition 2 (property filter 1, value)"),
        ("/rules/all/2/any/0/consent", "Condition 1 of group 3 (consent channel)"),
        ("/rules/all/2/any/1/not/in_audience", "Condition 2 of group 3 (audience)"),
        ("/rules/all/2/any/5/any/0/attr", "Condition 1 of group 3.6 (attribute)"),
        ("/rules/all/2/any", "Group 3"),
        ("/rules/all/3/not/any/0/op", "Condition 1 of group 4 (operator)"),
        ("/rules/not/attr", "Condition 1 (attribute)"),
        ("/rules/attr", "Condition 1 (attribute)"),
        ("/rules", "The rules"),
        ("/rules/all", "The rules"),
        ("/name", "Name"),
        ("/owner_team", "Owner team"),
        ("/channel", "Channel"),
        ("", ""),
        (None, ""),
    ],
)
def test_a_pointer_in_words(pointer, words):
    assert pointer_words(pointer) == words


def test_with_the_rules_a_pointer_at_a_node_says_whether_it_is_a_group_or_a_condition():
    assert pointer_words("/rules/all/2", RULES) == "Group 3"
    assert pointer_words("/rules/all/1", RULES) == "Condition 2"
    assert pointer_words("/rules/all/3", RULES) == "Group 4"  # a negated group
    assert pointer_words("/rules/all/9", RULES) == "Condition 10"  # not there: a condition
    assert pointer_words("/rules", {"attr": "region", "op": "eq", "value": "EU"}) == "Condition 1"


def test_the_problem_shown_in_the_portal_names_the_condition_not_the_pointer():
    problem = Problem(
        status=422,
        code="invalid_rules",
        title="The audience rules are not valid",
        errors=[
            {"pointer": "/rules/all/1/event", "code": "unknown", "message": "Unknown event type.", "hint": "Fix it."},
            {"pointer": "/rules/all/2/any/0/value", "code": "x", "message": "Not a value.", "hint": ""},
            {"pointer": "", "code": "y", "message": "Something about the whole request.", "hint": ""},
        ],
    )

    html = render_to_string("portal/_problem.html", {"problem": problem})

    assert "<strong>Condition 2 (event type)</strong>: Unknown event type." in html
    assert "<strong>Condition 1 of group 3 (value)</strong>: Not a value." in html
    assert "<li>Something about the whole request." in html
    assert ">/rules/" not in html  # the pointer is kept for the builder, never shown as text
    assert 'data-pointer="/rules/all/1/event"' in html
