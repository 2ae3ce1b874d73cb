"""Audience pages: the list with its filters, one audience (what each persona may do, the rules
in words, the live version, history), members masked like the API, share and unshare, promote,
and refusals shown in place. Publishing, versions, rollback and delete are in
test_audience_pages_publish.py."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences.definitions.services import audience_create
from audiences.models import Audience, AudienceState
from governance.models import AuditEvent, Door
from portal.audiences import views
from tests.audiences.publish_support import people
from tests.factories import AudienceFactory, AudienceVersionFactory, team
from tests.portal.conftest import htmx

pytestmark = pytest.mark.django_db


@contextmanager
def one_audit_event(**expected):
    """The block writes exactly one audit event (matching `expected`, e.g. outcome="denied")."""
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    yield
    written = list(AuditEvent.objects.filter(id__gt=before))
    assert len(written) == 1, [(e.action, e.outcome) for e in written]
    for name, value in expected.items():
        assert getattr(written[0], name) == value, (name, getattr(written[0], name))


def control(body: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    match = re.search(rf'<[a-z]+[^>]*\bid="{element_id}"[^>]*>', body)
    assert match, f"no element #{element_id}"
    return match.group(0)


def enabled(body: str, element_id: str) -> bool:
    tag = control(body, element_id)
    return 'aria-disabled="true"' not in tag and "disabled" not in tag.replace('data-allowed="true"', "")


def reason(body: str, element_id: str) -> str:
    """The words that say why the control is disabled: what its aria-describedby points at
    (beside it, or the action bar's one line for every button refused for that reason)."""
    described = re.search(r'aria-describedby="([^"]+)"', control(body, element_id))
    assert described, f"#{element_id} says nothing about why"
    match = re.search(rf'<(span|p)[^>]*\bid="{described.group(1)}"[^>]*>(.*?)</\1>', body, re.S)
    assert match, f"no reason for #{element_id}"
    return re.sub(r"<[^>]+>", "", match.group(2))


# --- 1. the list ---------------------------------------------------------------------------------


@pytest.fixture
def catalogue(sandbox, pilot):
    draft = AudienceFactory(environment=sandbox, name="Spring EU buyers", owner_team__name="growth")
    published = AudienceFactory(environment=sandbox, name="SMS winback", owner_team__name="retention", channel="sms")
    AudienceVersionFactory(audience=published, live=True, memberships=people(sandbox, "sms", 3, channel="sms"))
    archived = AudienceFactory(
        environment=sandbox, name="Old email list", owner_team__name="growth", state=AudienceState.ARCHIVED
    )
    AudienceFactory(environment=pilot, name="Pilot only", owner_team__name="growth")
    return {"draft": draft, "published": published, "archived": archived}


def rows(body: str) -> list[str]:
    return re.findall(r'<tr data-audience-id="\d+">\s*<td><a [^>]*>([^<]+)</a>', body)


def test_the_list_shows_the_environments_audiences_with_their_columns(portal, catalogue):
    response = portal("analyst").get("/audiences/")

    assert response.status_code == 200
    body = response.content.decode()
    assert rows(body) == ["Old email list", "SMS winback", "Spring EU buyers"]  # newest first
    published = catalogue["published"]
    row = re.search(rf'<tr data-audience-id="{published.pk}">(.*?)</tr>', body, re.S).group(1)
    for cell in ("retention", "sms", "Published", "v1", ">3<"):
        assert cell in row
    assert "Pilot only" not in body  # another environment's


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("team=retention", ["SMS winback"]),
        ("state=published", ["SMS winback"]),
        ("state=archived", ["Old email list"]),
        ("state=draft&team=growth", ["Spring EU buyers"]),
        ("channel=email", ["Old email list", "Spring EU buyers"]),
        ("q=eu+BUY", ["Spring EU buyers"]),
        ("q=zzz", []),
        ("q=eu", ["Spring EU buyers"]),
        ("team=nobody-team", []),
    ],
)
def test_the_list_filters_by_team_state_channel_and_name(portal, catalogue, query, names):
    body = portal("operator").get(f"/audiences/?{query}").content.decode()
    assert rows(body) == names
    if not names:
        assert 'id="no-audiences"' in body and "Clear filters" in body


def test_a_bad_filter_value_shows_the_hint_in_place(portal, catalogue):
    response = portal("operator").get("/audiences/?state=gone")

    assert response.status_code == 422
    body = response.content.decode()
    assert 'class="problem"' in body and "Use one of: draft, published, archived." in body
    assert 'id="audience-filters"' in body  # the filters stay on the page to fix it


def test_the_list_answers_in_a_fixed_number_of_queries(portal, sandbox):
    team("retention")
    client = portal("operator")
    for index in range(3):
        AudienceFactory(environment=sandbox, name=f"few {index}", published=True)
    client.get("/audiences/")  # warm the session and the permission cache
    with CaptureQueriesContext(connection) as few:
        assert client.get("/audiences/?team=growth").status_code == 200
    for index in range(30):
        AudienceFactory(
            environment=sandbox,
            name=f"many {index}",
            owner_team__name="retention" if index % 2 else "growth",
            published=True,
        )
    client.get("/audiences/")
    with CaptureQueriesContext(connection) as many:
        assert client.get("/audiences/?team=growth").status_code == 200
    assert len(many) == len(few) <= 8, [q["sql"] for q in many.captured_queries]


def test_the_list_pages_with_a_cursor(portal, sandbox, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for index in range(5):
        AudienceFactory(environment=sandbox, name=f"audience {index}")
    client = portal("analyst")

    first = client.get("/audiences/").content.decode()
    assert rows(first) == ["audience 4", "audience 3"]
    next_url = re.search(r'id="next-page" rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(next_url).content.decode()
    assert rows(second) == ["audience 2", "audience 1"]
    assert "First page" in second

    bad = client.get("/audiences/?cursor=not-a-cursor")
    assert bad.status_code == 400 and "The cursor is not valid" in bad.content.decode()


def test_new_audience_is_offered_only_to_who_may_create(portal, catalogue):
    operator = portal("operator").get("/audiences/").content.decode()
    assert enabled(operator, "new-audience") and 'href="/audiences/new/"' in operator

    analyst = portal("analyst").get("/audiences/").content.decode()
    assert not enabled(analyst, "new-audience")
    assert "campaign_operator" in reason(analyst, "new-audience")  # who can


def test_signed_out_visitors_are_sent_to_sign_in(client):
    assert client.get("/audiences/").status_code == 302


# --- 2. one audience -------------------------------------------------------------------------------


ACTIONS = ("edit-button", "publish-button", "delete-button", "copy-button", "share-button", "promote-button")


def test_the_owning_team_may_do_everything(portal, catalogue):
    body = portal("operator").get(f"/audiences/{catalogue['draft'].pk}/").content.decode()

    for element in ACTIONS:
        assert enabled(body, element), element
    assert 'hx-post="/audiences/{}/validate/"'.format(catalogue["draft"].pk) in body
    assert 'href="/audiences/{}/edit/"'.format(catalogue["draft"].pk) in body
    assert 'id="share-form"' in body and 'id="promote-form"' in body
    assert ">Delete…<" in body  # a draft is deleted; a published audience is archived
    assert "needs 1 approval" not in body  # a sandbox never asks for approval


def test_another_team_sees_why_it_may_not_change_it_and_who_can(portal, catalogue):
    body = portal("operator2").get(f"/audiences/{catalogue['draft'].pk}/").content.decode()

    for element in ("edit-button", "publish-button", "delete-button", "share-button"):
        assert not enabled(body, element), element
        assert "growth" in reason(body, element), element  # the owning team is named
    assert enabled(body, "promote-button")  # copying needs no ownership, only the role
    assert 'id="share-form"' not in body
    # said once for the bar, and the copy it offers is there to press (issue 11, item 9)
    bar = action_bar(body)
    assert bar.count('class="disabled-reason"') == 1 and bar.count("is owned by the team") == 1
    assert reason(body, "edit-button").startswith("Edit, Publish and Delete: Spring EU buyers is owned by the team")
    assert "or copy it into your team as a draft" in reason(body, "publish-button")
    assert enabled(body, "copy-button")
    assert f'href="/audiences/{catalogue["draft"].pk}/copy/"' in bar


def action_bar(body: str) -> str:
    return body.split('id="action-bar"', 1)[1].split('<div id="publish-panel"', 1)[0]


def test_an_analyst_sees_no_edit_controls_only_disabled_ones_with_the_reason_said_once(portal, catalogue):
    """Issue 11, item 9: the bar says once why Edit, Publish, Archive and Copy are disabled,
    not a paragraph under each button."""
    body = portal("analyst").get(f"/audiences/{catalogue['published'].pk}/").content.decode()

    for element in ACTIONS:
        assert not enabled(body, element), element
        assert "need one of the roles" in reason(body, element) or "needs one of the roles" in reason(body, element)
    bar = action_bar(body)
    said = (
        "Edit, Publish, Archive and Copy need one of the roles: campaign_operator, developer, admin. You have: analyst."
    )
    assert reason(body, "publish-button").startswith(said)
    assert bar.count("one of the roles: campaign_operator, developer, admin. You have") == 1
    assert bar.count('class="disabled-reason"') == 1
    assert {reason(body, element) for element in ("edit-button", "publish-button", "delete-button", "copy-button")} == {
        reason(body, "edit-button")
    }
    assert 'id="validate-button"' in body  # every role may validate
    assert "<form" not in body.split('id="audience-actions"')[1].split("</section>")[0]


def test_an_archived_audience_offers_nothing_that_changes_it(portal, catalogue):
    body = portal("operator").get(f"/audiences/{catalogue['archived'].pk}/").content.decode()
    for element in ("edit-button", "publish-button", "delete-button"):
        assert not enabled(body, element)
    assert "archived" in reason(body, "publish-button")
    # one line for the three, offering the copy the operator may make
    assert action_bar(body).count('class="disabled-reason"') == 1
    assert reason(body, "edit-button").startswith("Edit, Publish and Archive: “Old email list” is archived already")
    assert "Copy it into your team to start a new draft" in reason(body, "delete-button")
    assert enabled(body, "copy-button")


def test_the_detail_shows_metadata_rules_in_words_the_live_version_and_history(portal, actor, sandbox):
    operator = actor("operator", door=Door.PORTAL)
    base = AudienceFactory(environment=sandbox, name="Recent buyers")
    AudienceVersionFactory(audience=base, live=True)
    audience = audience_create(
        actor=operator,
        name="Spring EU buyers",
        channel="email",
        purpose="spring sale",
        description="EU customers who bought recently.",
        rules={
            "all": [
                {"attr": "region", "op": "in", "value": ["EU", "UK"]},
                {"consent": "email", "is": True},
                {"any": [{"event": "purchase", "within_days": 30, "min_count": 2}, {"not": {"in_audience": base.pk}}]},
            ]
        },
    )
    AudienceVersionFactory(
        audience=Audience.objects.get(pk=audience.pk), live=True, memberships=people(sandbox, "eu", 4)
    )

    body = portal("operator").get(f"/audiences/{audience.pk}/").content.decode()

    assert "spring sale" in body and "EU customers who bought recently." in body
    assert "All of these hold:" in body and "Region is one of EU, UK" in body
    assert "has given email consent" in body
    assert "did “purchase” at least 2 times in the last 30 days" in body
    assert f"Not: is a member of “Recent buyers” (audience {base.pk})" in body
    assert "Rules as JSON" in body and "&quot;in_audience&quot;" in body
    assert 'id="live-reach">4<' in body and "Version 1" in body
    history = body.split('id="history"')[1]
    assert "p-operator created the audience &#x27;Spring EU buyers&#x27;" in history
    assert f'href="/audit/?target=audiences.audience:{audience.pk}"' in history


def test_the_detail_answers_in_a_bounded_number_of_queries(portal, catalogue):
    client = portal("operator")
    url = f"/audiences/{catalogue['published'].pk}/"
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    assert len(queries) <= 25, [q["sql"] for q in queries.captured_queries]


def test_an_audience_of_another_environment_is_not_found_with_a_hint(portal, pilot):
    elsewhere = AudienceFactory(environment=pilot, name="Pilot only")
    response = portal("operator").get(f"/audiences/{elsewhere.pk}/")
    assert response.status_code == 404
    body = response.content.decode()
    assert 'class="problem"' in body and "There is no audience" in body


# --- 5. members ---------------------------------------------------------------------------------------


def test_members_are_masked_for_every_role_but_compliance(portal, sandbox):
    audience = AudienceFactory(environment=sandbox)
    members = people(sandbox, "eu", 3)
    AudienceVersionFactory(audience=audience, live=True, memberships=members)
    url = f"/audiences/{audience.pk}/members/"

    masked = portal("operator").get(url).content.decode()
    assert 'data-pii-masked="true"' in masked
    assert "eu-0" in masked and "e***@e***.test" in masked and "***23" in masked and "A***" in masked
    assert "eu-0@example.test" not in masked
    assert not AuditEvent.objects.filter(action="profile.pii_read").exists()

    with one_audit_event(action="profile.pii_read"):
        plain = portal("compliance").get(url).content.decode()
    assert 'data-pii-masked="false"' in plain and "eu-0@example.test" in plain


def test_members_page_with_a_cursor_and_bad_cursor(portal, sandbox, monkeypatch):
    monkeypatch.setattr(views, "MEMBERS_PAGE", 2)
    audience = AudienceFactory(environment=sandbox)
    AudienceVersionFactory(audience=audience, live=True, memberships=people(sandbox, "eu", 3))
    client = portal("analyst")
    first = client.get(f"/audiences/{audience.pk}/members/").content.decode()
    assert first.count("<tr data-profile-id") == 2
    next_url = re.search(r'rel="next" id="next-page" href="([^"]+)"', first).group(1)
    assert client.get(next_url).content.decode().count("<tr data-profile-id") == 1

    bad = client.get(f"/audiences/{audience.pk}/members/?cursor=xyz")
    assert bad.status_code == 400 and "The cursor is not valid" in bad.content.decode()


def test_the_versions_page_pages_with_a_cursor(portal, sandbox, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    audience = AudienceFactory(environment=sandbox)
    for _ in range(3):
        AudienceVersionFactory(audience=Audience.objects.get(pk=audience.pk), live=True)
    client = portal("analyst")

    first = client.get(f"/audiences/{audience.pk}/versions/").content.decode()
    older = re.search(r'rel="next" href="([^"]+)">Older versions', first).group(1).replace("&amp;", "&")
    second = client.get(older).content.decode()

    assert first.count("data-version=") == 2 and second.count("data-version=") == 1
    assert "Newest versions" in second


@pytest.mark.parametrize("cursor", ["not-a-cursor", "cD1hYmM="], ids=["unreadable", "a position that is no id"])
@pytest.mark.parametrize("page", ["/audiences/", "/audiences/{id}/versions/", "/audiences/{id}/members/"])
def test_a_bad_cursor_on_a_portal_list_is_a_400_problem_in_place(portal, sandbox, page, cursor):
    audience = AudienceFactory(environment=sandbox)
    AudienceVersionFactory(audience=audience, live=True, memberships=people(sandbox, "eu", 1))

    response = portal("analyst").get(page.format(id=audience.pk), {"cursor": cursor})

    body = response.content.decode()
    assert response.status_code == 400 and 'class="problem"' in body
    assert "The cursor is not valid" in body


def test_members_of_an_unpublished_audience(portal, sandbox):
    audience = AudienceFactory(environment=sandbox)
    body = portal("analyst").get(f"/audiences/{audience.pk}/members/").content.decode()
    assert 'id="no-live-version"' in body


# --- 6. promote ----------------------------------------------------------------------------------------


def test_promote_to_production_creates_a_draft_there_and_lists_what_could_not_be_mapped(portal, sandbox, production):
    ref = AudienceFactory(environment=sandbox, name="Complainers")  # published here, unknown in production
    AudienceVersionFactory(audience=ref, live=True)
    audience = AudienceFactory(
        environment=sandbox,
        name="Spring EU buyers",
        rules={"all": [{"attr": "region", "op": "eq", "value": "EU"}, {"not": {"in_audience": ref.pk}}]},
    )

    with one_audit_event(action="audience.promote", environment_id=production.pk):
        response = htmx(portal("operator"), "post", f"/audiences/{audience.pk}/promote/", {"environment": "production"})

    assert response.status_code == 201
    copy = Audience.objects.get(environment=production, name="Spring EU buyers")
    assert copy.state == AudienceState.DRAFT and copy.owner_team == team("growth")
    body = response.content.decode()
    assert f'data-copy-id="{copy.pk}"' in body and "Production" in body
    assert 'id="promote-unmapped"' in body and "Complainers" in body
    # the condition in words (issue 11, item 12); the pointer only as the builder's mark
    assert "Condition 2 (audience): audience" in body and 'data-pointer="/rules/all/1/not/in_audience"' in body
    assert 'name="next" value="/audiences/?q=Spring+EU+buyers"' in body


def test_promote_without_htmx_is_a_page(portal, sandbox, production):
    audience = AudienceFactory(environment=sandbox)
    response = portal("operator").post(f"/audiences/{audience.pk}/promote/", {"environment": "pilot"})
    assert response.status_code == 201
    assert "<h1>Promoted" in response.content.decode()


@pytest.mark.parametrize(
    ("environment", "status", "words"),
    [
        ("moon", 422, "Use one of: sandbox, pilot, production"),
        ("sandbox", 422, "Promote into another environment"),
    ],
)
def test_promote_to_a_bad_environment_shows_the_hint(portal, sandbox, environment, status, words):
    audience = AudienceFactory(environment=sandbox)
    response = htmx(portal("operator"), "post", f"/audiences/{audience.pk}/promote/", {"environment": environment})
    assert response.status_code == status
    body = response.content.decode()
    assert body.lstrip().startswith('<div class="problem"') and words in body


def test_promote_to_a_name_taken_there_says_how_to_name_the_copy(portal, sandbox, production):
    audience = AudienceFactory(environment=sandbox, name="Spring EU buyers")
    AudienceFactory(environment=production, name="Spring EU buyers")
    response = htmx(portal("operator"), "post", f"/audiences/{audience.pk}/promote/", {"environment": "production"})
    assert response.status_code == 409 and "Spring EU buyers (copy)" in response.content.decode()

    renamed = htmx(
        portal("operator"),
        "post",
        f"/audiences/{audience.pk}/promote/",
        {"environment": "production", "name": "Spring EU buyers 2"},
    )
    assert renamed.status_code == 201


def test_an_analyst_may_not_promote(portal, sandbox):
    audience = AudienceFactory(environment=sandbox)
    with one_audit_event(action="audience.promote", outcome="denied"):
        response = portal("analyst").post(f"/audiences/{audience.pk}/promote/", {"environment": "production"})
    assert response.status_code == 403 and "You may not do this" in response.content.decode()


# --- 7. share ---------------------------------------------------------------------------------------------


def test_share_and_unshare_with_a_team(portal, sandbox):
    team("retention")
    audience = AudienceFactory(environment=sandbox)
    client = portal("operator")

    with one_audit_event(action="audience.share"):
        response = htmx(client, "post", f"/audiences/{audience.pk}/share/", {"team": "retention", "level": "change"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card" id="shares"')
    assert 'data-share="team:retention"' in body and "is shared with the team retention (change)" in body
    # the other team may now change it
    other = portal("operator2").get(f"/audiences/{audience.pk}/").content.decode()
    assert enabled(other, "edit-button") and enabled(other, "publish-button")

    with one_audit_event(action="audience.unshare"):
        response = htmx(client, "post", f"/audiences/{audience.pk}/unshare/", {"team": "retention"})
    body = response.content.decode()
    assert 'data-share="team:retention"' not in body and 'id="no-shares"' in body


def test_share_with_a_person_without_htmx_goes_back_to_the_page(portal, sandbox, persona):
    persona("operator2")
    audience = AudienceFactory(environment=sandbox)
    client = portal("operator")
    response = client.post(f"/audiences/{audience.pk}/share/", {"user": "p-operator2", "level": "view"})
    assert response.status_code == 303 and response["Location"] == f"/audiences/{audience.pk}/#shares"
    page = client.get(response["Location"]).content.decode()
    assert 'data-share="user:p-operator2"' in page and "is shared with p-operator2 (view)" in page


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"team": "nope", "level": "change"}, "There is no team &#x27;nope&#x27;"),
        ({"team": "analyst", "level": "change"}, "roles such as analyst are not teams"),
        ({"user": "ghost", "level": "view"}, "There is no active user"),
        ({"level": "view"}, "Name either a team or a user"),
        ({"team": "growth", "level": "change"}, "owns the audience already"),
        ({"team": "retention", "level": "admin"}, "Use view or change."),
    ],
)
def test_bad_shares_show_the_hint_in_the_sharing_card(portal, sandbox, data, words):
    team("retention")
    audience = AudienceFactory(environment=sandbox)
    before = AuditEvent.objects.count()
    response = htmx(portal("operator"), "post", f"/audiences/{audience.pk}/share/", data)
    assert response.status_code == 422
    body = response.content.decode()
    assert 'id="shares"' in body and 'class="problem"' in body and words in body
    assert 'id="share-form"' in body  # still there to try again
    assert AuditEvent.objects.count() == before


def test_taking_back_a_share_that_does_not_exist(portal, sandbox):
    team("retention")
    audience = AudienceFactory(environment=sandbox)
    response = htmx(portal("operator"), "post", f"/audiences/{audience.pk}/unshare/", {"team": "retention"})
    assert response.status_code == 404 and "is not shared with them" in response.content.decode()


def test_a_forged_share_by_another_team_is_refused_by_the_service(portal, sandbox):
    audience = AudienceFactory(environment=sandbox)
    with one_audit_event(action="audience.share", outcome="denied"):
        response = portal("operator2").post(
            f"/audiences/{audience.pk}/share/", {"team": "retention", "level": "change"}
        )
    assert response.status_code == 403
    body = response.content.decode()
    assert "owned by the team &#x27;growth&#x27;" in body and "<html" in body


# --- refusals of forged posts ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["publish/", "delete/", "rollback/"])
def test_an_analysts_forged_post_is_refused_by_the_service_and_audited(portal, sandbox, path):
    audience = AudienceFactory(environment=sandbox)
    AudienceVersionFactory(audience=audience, live=True)
    AudienceVersionFactory(audience=audience, live=True)
    action = {"publish/": "audience.publish", "delete/": "audience.archive", "rollback/": "audience.rollback"}[path]
    with one_audit_event(action=action, outcome="denied"):
        response = portal("analyst").post(f"/audiences/{audience.pk}/{path}", {"version": "1"})
    assert response.status_code == 403
    assert "You may not do this" in response.content.decode()
    assert Audience.objects.get(pk=audience.pk).state == AudienceState.PUBLISHED


def test_the_actor_is_recorded_as_acting_through_the_portal(portal, sandbox):
    team("retention")
    audience = AudienceFactory(environment=sandbox)
    portal("operator").post(f"/audiences/{audience.pk}/share/", {"team": "retention", "level": "view"})
    event = AuditEvent.objects.get(action="audience.share")
    assert event.door == Door.PORTAL and event.actor_label == "p-operator"


def test_the_validate_button_answers_with_the_checks_fragment(portal, sandbox):
    audience = AudienceFactory(environment=sandbox)
    body = portal("analyst").get(f"/audiences/{audience.pk}/").content.decode()
    assert 'hx-target="#validation-panel"' in body
    response = htmx(portal("analyst"), "post", f"/audiences/{audience.pk}/validate/")
    assert response.status_code == 200 and "<html" not in response.content.decode()
