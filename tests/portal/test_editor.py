"""The audience editor: create and edit through the same services as the API, the live
preview (numbers equal to the API's), validation beside the offending condition, and the
refusals of those who may not edit."""

from __future__ import annotations

import json
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences import rules as rules_language
from audiences.models import Audience, AudienceState, Profile, RegionalRestriction, SuppressionEntry, SuppressionList
from governance.access import objectperms
from governance.models import AuditEvent, Door, Outcome
from tests.factories import AudienceFactory, AudienceVersionFactory, ConsentFactory, ProfileFactory, team
from tests.portal.conftest import htmx

pytestmark = pytest.mark.django_db

NEW = "/audiences/new/"
PREVIEW = "/audiences/preview/"
API_PREVIEW = "/api/v1/audiences/preview"
CUSTOMERS = {"attr": "lifecycle_stage", "op": "eq", "value": "customer"}
GOOD_RULES = {"all": [{"attr": "region", "op": "in", "value": ["EU", "UK"]}, {"consent": "email", "is": True}]}
BAD_RULES = {
    "all": [
        {"attr": "regoin", "op": "eq", "value": "EU"},
        {"attr": "lifecycle_stage", "op": "contains", "value": "cust"},
        {"event": "Cart Abandoned", "within_days": 7},
    ]
}


def form(**overrides: Any) -> dict[str, str]:
    body: dict[str, Any] = {
        "name": "Spring EU buyers",
        "owner_team": "growth",
        "channel": "email",
        "purpose": "spring sale",
        "description": "EU and UK people who may hear from us by email.",
        "rules": GOOD_RULES,
    }
    body.update(overrides)
    if not isinstance(body["rules"], str):
        body["rules"] = json.dumps(body["rules"])
    return body


class Elements(HTMLParser):
    """Every element's attributes, to read the data-* attributes a page carries."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def having(self, name: str) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.found if name in attrs]


def script_json(page: str, element_id: str) -> Any:
    return json.loads(page.split(f'<script id="{element_id}" type="application/json">')[1].split("</script>")[0])


def preview(client, rules: Any, channel: str = "email", **extra: Any):
    return htmx(client, "post", PREVIEW, {"rules": json.dumps(rules), "channel": channel, **extra})


def marks(response_or_page: Any) -> dict[str, Any]:
    """What the builder marks beside conditions and fields: {"source", "errors"}."""
    page = response_or_page if isinstance(response_or_page, str) else response_or_page.content.decode()
    return json.loads(page.split('<script type="application/json" class="rules-problems">')[1].split("</script>")[0])


@pytest.fixture
def crowd(sandbox):
    """Eight customers and a lapsed one, hand-counted for email:

    - EU 0–4, UK 0–2 customers. Email consent (web form) for EU 0–3, UK 0–1 and the lapsed
      EU profile; denied for EU 4; none for UK 2 → 6 of 8 customers consented.
    - The global list suppresses EU 0 → 5.
    - "Email may not target the UK" removes UK 0–1 → 3 reachable (EU 1–3).
    """
    eu = [ProfileFactory(environment=sandbox, region="EU", external_id=f"eu-{i}") for i in range(5)]
    uk = [ProfileFactory(environment=sandbox, region="UK", external_id=f"uk-{i}") for i in range(3)]
    lapsed = ProfileFactory(environment=sandbox, region="EU", external_id="lapsed-0", lifecycle_stage="lapsed")
    for profile in [*eu[:4], *uk[:2], lapsed]:
        ConsentFactory(profile=profile, channel="email", status="granted", source="web_form")
    ConsentFactory(profile=eu[4], channel="email", status="denied")
    glob = SuppressionList.objects.get(environment=sandbox, is_global=True)
    SuppressionEntry.objects.create(suppression_list=glob, external_id="eu-0")
    RegionalRestriction.objects.create(
        environment=sandbox, region="UK", channel="email", kind="blocked", description="Email may not target the UK"
    )
    return eu, uk


# --- the page ---------------------------------------------------------------------------------


def test_the_new_page_offers_metadata_the_builder_the_json_view_and_the_live_preview(portal):
    response = portal("operator").get(NEW)

    assert response.status_code == 200
    page = response.content.decode()
    for label in ("Name", "Owner team", "Channel", "Purpose", "Description", "Rules as JSON"):
        assert f">{label}</label>" in page
    assert '<textarea id="rules-json" name="rules"' in page
    textarea = page.split('name="rules"', 1)[1].split(">", 1)[1].split("</textarea>")[0]
    assert json.loads(unescape(textarea)) == {"all": []}
    assert 'id="rule-builder"' in page and "portal/builder.js" in page
    assert 'class="split editor"' in page
    assert 'hx-trigger="load, rules-changed from:body delay:400ms"' in page and 'id="preview"' in page
    assert ">Save audience</button>" in page
    # Validate runs on a saved audience: offered disabled, with the reason.
    assert "Save the audience first" in page


def test_the_catalog_comes_from_the_rules_language(portal, sandbox):
    AudienceFactory(environment=sandbox, name="Recent buyers")
    AudienceFactory(environment=sandbox, name="Old", state=AudienceState.ARCHIVED)

    page = portal("operator").get(NEW).content.decode()

    catalog = script_json(page, "rule-catalog")
    assert catalog["operators"] == {kind: list(ops) for kind, ops in rules_language.OPERATORS.items()}
    assert {a["name"]: a["type"] for a in catalog["attributes"]} == {
        name: kind for name, (kind, _) in rules_language.ATTRIBUTES.items()
    }
    region = next(a for a in catalog["attributes"] if a["name"] == "region")
    assert [v["value"] for v in region["values"]] == list(rules_language.ATTRIBUTES["region"][1])
    assert catalog["custom_prefix"] == "attributes." and catalog["custom_type"] == "json"
    assert catalog["event_property_operators"] == list(rules_language.EVENT_PROPERTY_OPERATORS)
    every_operator = {op for ops in rules_language.OPERATORS.values() for op in ops}
    assert every_operator | set(rules_language.EVENT_PROPERTY_OPERATORS) <= set(catalog["operator_labels"])
    # archived audiences are not offered for in_audience
    assert [a["label"].split(" (")[0] for a in catalog["audiences"]] == ["Recent buyers"]


def test_the_builder_offers_the_custom_attributes_and_events_the_data_holds(portal, api, sandbox):
    """The attribute and event pickers suggest what ingestion catalogued (issue 11, item 4)."""
    client = api("developer")
    client.post(
        "/api/v1/profiles/bulk",
        [{"external_id": "c-1", "attributes": {"loyalty_tier": "gold", "lifetime_value": 12.5}}],
        format="json",
    )
    client.post(
        "/api/v1/profile-events/bulk",
        [
            {
                "external_id": "c-1",
                "type": "purchase",
                "occurred_at": "2026-03-04T17:02:00Z",
                "properties": {"amount": 5},
            }
        ],
        format="json",
    )

    catalog = script_json(portal("operator").get(NEW).content.decode(), "rule-catalog")

    assert [(a["key"], a["types"]) for a in catalog["custom_attributes"]] == [
        ("lifetime_value", ["number"]),
        ("loyalty_tier", ["text"]),
    ]
    (purchase,) = catalog["event_types"]
    assert purchase["key"] == "purchase" and [p["key"] for p in purchase["properties"]] == ["amount"]


def test_a_preview_without_a_channel_marks_the_channel_and_the_rules_problems(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Saved")

    response = htmx(
        portal("operator"),
        "post",
        PREVIEW,
        {"rules": json.dumps(BAD_RULES), "channel": "", "audience_id": str(audience.pk)},
    )

    assert response.status_code == 422
    pointers = [e["pointer"] for e in marks(response)["errors"]]
    assert pointers[0] == "/channel"
    assert {"/rules/all/0/attr", "/rules/all/1/op", "/rules/all/2/event"} <= set(pointers)


def test_a_preview_marks_a_custom_attribute_nobody_has_as_a_warning_beside_its_condition(portal, crowd):
    rules = {"all": [CUSTOMERS, {"attr": "attributes.loyalty_teir", "op": "eq", "value": "gold"}]}

    response = preview(portal("analyst"), rules)

    assert response.status_code == 200  # a warning, not a refusal
    (mark,) = marks(response)["errors"]
    assert (mark["pointer"], mark["code"], mark["severity"]) == (
        "/rules/all/1/attr",
        "unknown_custom_attribute",
        "warning",
    )
    assert 'data-code="unknown_custom_attribute"' in response.content.decode()


def test_owner_team_offers_only_the_teams_the_person_may_pick(portal, sandbox):
    team("retention")

    operator_page = portal("operator").get(NEW).content.decode()
    admin_page = portal("admin").get(NEW).content.decode()

    assert '<option value="growth" selected>' in operator_page and 'value="retention"' not in operator_page
    assert 'value="growth"' in admin_page and 'value="retention"' in admin_page
    assert 'value="analyst"' not in admin_page  # roles are not teams


# --- saving ----------------------------------------------------------------------------------


def test_create_with_valid_rules_saves_exactly_those_rules_with_one_audit_event(portal):
    client = portal("operator")

    response = client.post(NEW, form())

    assert response.status_code == 303
    audience = Audience.objects.get(name="Spring EU buyers")
    assert response["Location"] == f"/audiences/{audience.pk}/"
    assert audience.rules == GOOD_RULES
    assert (audience.owner_team.name, audience.channel, audience.state) == ("growth", "email", "draft")
    event = AuditEvent.objects.get(action="audience.create")  # exactly one
    assert (event.door, event.outcome, event.actor_user_id) == (Door.PORTAL, Outcome.ALLOWED, client.user.pk)


def test_invalid_rules_are_422_with_each_problem_by_its_pointer_and_nothing_is_created(portal):
    response = portal("operator").post(NEW, form(rules=BAD_RULES))

    assert response.status_code == 422
    page = response.content.decode()
    assert "The audience was not saved" not in page  # the service's own problem, not the form's
    assert "The audience rules are not valid" in page
    for pointer in ("/rules/all/0/attr", "/rules/all/1/op", "/rules/all/2/event"):
        assert f'data-pointer="{pointer}"' in page
    assert "did you mean &#x27;region&#x27;?" in page and "For lifecycle_stage use one of" in page
    initial = marks(page)
    assert initial["source"] == "server"
    assert [e["pointer"] for e in initial["errors"]] == ["/rules/all/0/attr", "/rules/all/1/op", "/rules/all/2/event"]
    # what the marketer typed is kept
    assert "Spring EU buyers" in page and "Cart Abandoned" in page
    assert not Audience.objects.exists()
    assert not AuditEvent.objects.filter(action="audience.create").exists()


def test_missing_metadata_is_shown_by_its_field_together_with_the_rules_problems(portal):
    response = portal("operator").post(NEW, form(name="", purpose="  ", rules=BAD_RULES))

    assert response.status_code == 422
    page = response.content.decode()
    assert "The audience was not saved" in page
    name_problems = page.split('id="name-problems">')[1].split("</ul>")[0]
    purpose_problems = page.split('id="purpose-problems">')[1].split("</ul>")[0]
    assert "Name is required." in name_problems and "unique in this environment" in name_problems
    assert "Purpose is required." in purpose_problems
    assert 'id="id_name" name="name"' in page and 'aria-invalid="true"' in page
    # every problem at once: the rules too
    assert 'data-pointer="/rules/all/0/attr"' in page
    assert not Audience.objects.exists()


def test_rules_that_are_not_json_keep_the_text_and_say_where_it_breaks(portal):
    response = portal("operator").post(NEW, form(rules='{"all": [ {"attr": "region",, }]}'))

    assert response.status_code == 422
    page = response.content.decode()
    assert "The rules are not valid JSON" in page and "line 1" in page
    assert "{&quot;all&quot;: [ {&quot;attr&quot;: &quot;region&quot;,, }]}" in page
    assert not Audience.objects.exists()


def test_a_taken_name_is_shown_beside_the_name(portal, sandbox):
    AudienceFactory(environment=sandbox, name="Spring EU buyers")

    response = portal("operator").post(NEW, form())

    assert response.status_code == 409
    name_problems = response.content.decode().split('id="name-problems">')[1].split("</ul>")[0]
    assert "is taken in sandbox" in name_problems
    assert Audience.objects.count() == 1


def test_edit_saves_what_changed_through_audience_update(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="EU customers", rules=GOOD_RULES)
    client = portal("operator")

    page = client.get(f"/audiences/{audience.pk}/edit/")
    assert page.status_code == 200
    assert "Edit “EU customers”" in page.content.decode()
    new_rules = {"all": [*GOOD_RULES["all"], {"not": {"event": "purchase", "within_days": 30}}]}
    response = client.post(f"/audiences/{audience.pk}/edit/", form(name="EU customers", rules=new_rules))

    assert response.status_code == 303
    audience.refresh_from_db()
    assert audience.rules == new_rules and audience.purpose == "spring sale"
    event = AuditEvent.objects.get(action="audience.edit")
    assert sorted(event.changes["fields"]) == ["description", "purpose", "rules"]


def test_a_share_of_change_lets_another_team_edit_without_taking_the_audience(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="EU customers")
    client = portal("operator2")
    objectperms.share(audience, team("retention"), "change")

    page = client.get(f"/audiences/{audience.pk}/edit/").content.decode()
    # Only the current owner is offered: a share of change may not take the audience (issue 12).
    assert '<option value="growth" selected>' in page and '<option value="retention">' not in page
    response = client.post(f"/audiences/{audience.pk}/edit/", form(name="EU customers", purpose="winback 2"))

    assert response.status_code == 303
    audience.refresh_from_db()
    assert (audience.purpose, audience.owner_team.name) == ("winback 2", "growth")


def test_an_archived_audience_is_not_editable(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Gone", state=AudienceState.ARCHIVED)

    response = portal("operator").get(f"/audiences/{audience.pk}/edit/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "is archived" in page and "Save audience" not in page


def test_an_audience_of_another_environment_is_not_found(portal, pilot):
    elsewhere = AudienceFactory(environment=pilot, name="Pilot only")

    response = portal("operator").get(f"/audiences/{elsewhere.pk}/edit/")

    assert response.status_code == 404
    assert "There is no audience" in response.content.decode()


# --- refusals ------------------------------------------------------------------------------


def test_an_analyst_gets_no_editor_but_the_reason_and_who_can(portal):
    response = portal("analyst").get(NEW)

    assert response.status_code == 403
    page = response.content.decode()
    assert 'id="editor-refused"' in page
    assert "Create audiences needs one of the roles" in page and "campaign_operator" in page
    assert "Save audience" not in page and 'name="rules"' not in page and 'id="rule-builder"' not in page


def test_a_forged_create_by_an_analyst_is_refused_by_the_service_and_audited(portal):
    response = portal("analyst").post(NEW, form())

    assert response.status_code == 403
    assert "You may not do this" in response.content.decode()
    assert not Audience.objects.exists()
    denied = AuditEvent.objects.get(action="audience.create")
    assert (denied.outcome, denied.door) == (Outcome.DENIED, Door.PORTAL)


def test_another_teams_audience_shows_who_owns_it_and_no_save(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Growth only")

    response = portal("operator2").get(f"/audiences/{audience.pk}/edit/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "owned by the team &#x27;growth&#x27;" in page and "Ask the growth team" in page
    assert "Save audience" not in page and 'name="rules"' not in page


def test_a_forged_edit_of_another_teams_audience_is_refused_and_audited(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Growth only", rules=GOOD_RULES)

    response = portal("operator2").post(f"/audiences/{audience.pk}/edit/", form(name="Mine now", rules=CUSTOMERS))

    assert response.status_code == 403
    audience.refresh_from_db()
    assert (audience.name, audience.rules) == ("Growth only", GOOD_RULES)
    denied = AuditEvent.objects.get(action="audience.edit")
    assert denied.outcome == Outcome.DENIED


# --- preview ---------------------------------------------------------------------------------


def test_the_preview_panel_shows_the_same_numbers_as_the_api(portal, api, crowd):
    body = {"rules": CUSTOMERS, "channel": "email"}
    expected = api("operator").post(API_PREVIEW, body, format="json").json()

    response = htmx(portal("operator"), "post", PREVIEW, {"rules": json.dumps(CUSTOMERS), "channel": "email"})

    assert response.status_code == 200
    html = response.content.decode()
    page = Elements(html)
    result = page.having("data-reachable")[0]
    assert (int(result["data-count"]), int(result["data-reachable"])) == (expected["count"], expected["reachable"])
    assert (expected["count"], expected["reachable"]) == (8, 3)
    steps = [(s["data-step"], int(s["data-remaining"]), int(s["data-removed"])) for s in page.having("data-removed")]
    assert steps == [(s["step"], s["remaining"], s["removed"]) for s in expected["waterfall"]]
    for key, counts in expected["breakdowns"].items():
        table = html.split(f'data-breakdown="{key}"')[1].split("</table>")[0]
        rows = {attrs["data-value"]: int(attrs["data-count"]) for attrs in Elements(table).having("data-count")}
        assert rows == counts
    assert [int(p["data-profile"]) for p in page.having("data-profile")] == [p["id"] for p in expected["sample"]]
    for profile in expected["sample"]:
        assert profile["email"] in html  # masked the same way (e***@e***.test)
    assert "eu-1@example.test" not in html
    assert {w["data-code"] for w in page.having("data-code")} >= {w["code"] for w in expected["warnings"]}
    assert marks(response) == {"source": "preview", "errors": []}


def test_the_waterfall_is_an_accessible_svg_with_text_labels(portal, crowd):
    html = preview(portal("analyst"), CUSTOMERS).content.decode()

    svg = html.split('<svg id="waterfall"')[1].split("</svg>")[0]
    assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
    for label in (
        "Matching the rules",
        "No address for email",
        "Without email consent",
        "Suppressed",
        "Regional restriction",
        "Reachable",
    ):
        assert label in svg
    assert "8 profiles match the rules" in svg and "3 reachable by email" in svg
    assert 'id="waterfall-table"' in html and 'id="preview-count">8<' in html


def test_the_chart_shows_who_has_no_address_for_the_channel(portal, crowd):
    eu, _uk = crowd
    Profile.objects.filter(pk=eu[1].pk).update(email=None)  # consented, not suppressed

    html = preview(portal("analyst"), CUSTOMERS).content.decode()

    step = Elements(html).having("data-step")[1]
    assert (step["data-step"], step["data-removed"], step["data-remaining"]) == ("no address", "1", "7")
    assert "no address for email: 1 removed" in html.split("<desc")[1].split("</desc>")[0]
    assert "2 reachable by email" in html


def test_a_compliance_reviewer_sees_the_sample_unmasked_and_the_read_is_audited(portal, crowd):
    html = preview(portal("compliance"), CUSTOMERS).content.decode()

    assert "eu-1@example.test" in html and 'data-masked="false"' in html
    read = AuditEvent.objects.get(action="profile.pii_read")
    assert read.door == Door.PORTAL and len(read.changes["profile_ids"]) == 3


def test_a_preview_of_invalid_rules_lists_the_problems_and_marks_the_conditions(portal, crowd):
    response = htmx(portal("operator"), "post", PREVIEW, {"rules": json.dumps(BAD_RULES), "channel": "email"})

    assert response.status_code == 422
    html = response.content.decode()
    assert "<html" not in html and 'data-state="invalid"' in html
    assert "No preview yet" in html and "marked beside its condition" in html
    marked = marks(response)
    assert marked["source"] == "preview"
    assert [(e["pointer"], e["code"]) for e in marked["errors"]] == [
        ("/rules/all/0/attr", "unknown_attribute"),
        ("/rules/all/1/op", "operator_not_allowed"),
        ("/rules/all/2/event", "bad_event_type"),
    ]
    assert all(e["hint"] for e in marked["errors"])


@pytest.mark.parametrize(
    ("data", "pointer"),
    [
        ({"rules": '{"all": [', "channel": "email"}, "/rules"),
        ({"rules": '{"all": []}', "channel": "fax"}, "/channel"),
    ],
)
def test_a_preview_without_valid_json_or_channel_says_what_to_fix(portal, data, pointer):
    response = htmx(portal("operator"), "post", PREVIEW, data)

    assert response.status_code == 422
    assert [e["pointer"] for e in marks(response)["errors"]] == [pointer]


def test_the_preview_of_a_saved_audience_guards_against_referring_to_itself(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Loop")
    rules = {"all": [{"in_audience": audience.pk}]}

    response = htmx(
        portal("operator"),
        "post",
        PREVIEW,
        {"rules": json.dumps(rules), "channel": "email", "audience_id": audience.pk},
    )

    assert response.status_code == 422
    assert "audience_cycle" in {e["code"] for e in marks(response)["errors"]}


def test_the_preview_counts_in_the_preview_rate_class(portal, crowd):
    from governance.limits import ratelimit

    client = portal("operator")
    limit = ratelimit.limit_for("preview").limit
    data = {"rules": json.dumps(CUSTOMERS), "channel": "email"}
    for _ in range(limit):
        assert htmx(client, "post", PREVIEW, data).status_code == 200

    response = htmx(client, "post", PREVIEW, data)

    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()


# --- validate -----------------------------------------------------------------------------------


def test_validate_lists_every_check_with_its_hint(portal, crowd, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Customers", rules=CUSTOMERS)

    response = htmx(portal("analyst"), "post", f"/audiences/{audience.pk}/validate/")

    assert response.status_code == 200
    html = response.content.decode()
    checks = {c["data-check"]: c["data-status"] for c in Elements(html).having("data-check")}
    assert checks == {
        "schema": "passed",
        "required_metadata": "passed",
        "known_names": "passed",
        "address": "passed",
        "consent": "warning",
        "regional_restrictions": "warning",
        "suppression_overlap": "warning",
        "size": "passed",
    }
    assert "2 of 8 matching profiles lack email consent" in html
    assert "{&quot;consent&quot;: &quot;email&quot;, &quot;is&quot;: true}" in html  # the hint
    assert marks(response) == {"source": "validate", "errors": []}


def test_validate_points_at_the_offending_conditions_and_fields_of_the_edited_definition(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Customers", rules=CUSTOMERS)

    response = htmx(
        portal("operator"),
        "post",
        f"/audiences/{audience.pk}/validate/",
        {
            "rules": json.dumps(BAD_RULES),
            "channel": "email",
            "name": "Customers",
            "purpose": "",
            "owner_team": "growth",
        },
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-valid="false"' in html and "unsaved changes (purpose, rules)" in html
    statuses = {c["data-check"]: c["data-status"] for c in Elements(html).having("data-check")}
    assert statuses["schema"] == "failed" and statuses["required_metadata"] == "failed"
    assert statuses["size"] == "skipped"
    marked = marks(response)["errors"]
    assert [e["pointer"] for e in marked] == ["/rules/all/0/attr", "/rules/all/1/op", "/rules/all/2/event", "/purpose"]
    assert all(e["hint"] for e in marked)
    audience.refresh_from_db()
    assert audience.rules == CUSTOMERS and audience.purpose == "winback"  # nothing saved


def test_validate_of_the_saved_audience_when_nothing_is_sent(portal, sandbox):
    audience = AudienceFactory(
        environment=sandbox, name="Broken", rules={"all": [{"attr": "regoin", "op": "eq", "value": "EU"}]}
    )

    response = htmx(portal("analyst"), "post", f"/audiences/{audience.pk}/validate/")

    assert [e["pointer"] for e in marks(response)["errors"]] == ["/rules/all/0/attr"]
    assert "did you mean" in response.content.decode()


# --- cost -------------------------------------------------------------------------------------------


def test_the_editor_answers_in_a_fixed_number_of_queries(portal, sandbox, django_assert_max_num_queries):
    for index in range(5):
        AudienceFactory(environment=sandbox, name=f"Audience {index}")
    audience = Audience.objects.first()
    client = portal("operator")
    client.get(NEW)  # sessions and caches warm

    with django_assert_max_num_queries(8):
        assert client.get(NEW).status_code == 200
    with CaptureQueriesContext(connection) as few:
        client.get(f"/audiences/{audience.pk}/edit/")
    for index in range(20):
        AudienceFactory(environment=sandbox, name=f"More {index}")
    with CaptureQueriesContext(connection) as many:
        assert client.get(f"/audiences/{audience.pk}/edit/").status_code == 200
    assert len(few) == len(many) <= 10, [q["sql"][:100] for q in many.captured_queries]


def test_the_preview_answers_in_a_fixed_number_of_queries(portal, sandbox, crowd, django_assert_max_num_queries):
    client = portal("operator")
    data = {"rules": json.dumps(CUSTOMERS), "channel": "email"}
    htmx(client, "post", PREVIEW, data)

    with CaptureQueriesContext(connection) as few:
        htmx(client, "post", PREVIEW, data)
    for index in range(30):
        ProfileFactory(environment=sandbox, region="EU", external_id=f"more-{index}")
    with CaptureQueriesContext(connection) as many:
        htmx(client, "post", PREVIEW, data)

    # session, user, environment, then the preview's own: restrictions, the grouped pass, the sample
    assert len(few) == len(many) <= 8, [q["sql"][:100] for q in many.captured_queries]


def test_validate_answers_in_a_fixed_number_of_queries(portal, sandbox, crowd, django_assert_max_num_queries):
    audience = AudienceFactory(environment=sandbox, name="Customers", rules=CUSTOMERS)
    client = portal("operator")
    htmx(client, "post", f"/audiences/{audience.pk}/validate/")

    with django_assert_max_num_queries(9):
        response = htmx(client, "post", f"/audiences/{audience.pk}/validate/", {"rules": json.dumps(CUSTOMERS)})
    assert response.status_code == 200


def test_editing_a_published_audience_says_the_live_version_stays(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Live one")
    AudienceVersionFactory(audience=audience, live=True)

    page = portal("operator").get(f"/audiences/{audience.pk}/edit/").content.decode()

    assert 'id="published-note"' in page and "keep the live version until you publish again" in page


def test_validate_of_rules_that_are_not_json_says_where_it_breaks(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="Customers", rules=CUSTOMERS)

    response = htmx(portal("operator"), "post", f"/audiences/{audience.pk}/validate/", {"rules": '{"all": ['})

    assert response.status_code == 422
    assert "The rules are not valid JSON" in response.content.decode()
    assert [e["code"] for e in marks(response)["errors"]] == ["malformed_json"]


def test_the_preview_names_conditions_in_words_not_json_pointers(portal):
    """Issue 11, item 12: marketers read "Condition 2", not /rules/all/1/attr."""
    client = portal("operator")
    rules = {"all": [{"attr": "region", "op": "eq", "value": "EU"}, {"attr": "regoin", "op": "eq", "value": "EU"}]}

    page = preview(client, rules).content.decode()

    listed = page.split("</script>", 1)[1]  # the problem list, after the builder's marks
    assert "Condition 2" in listed
    assert "<code>/rules/all/1/attr</code>" not in listed
