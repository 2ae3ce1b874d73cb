"""Copy an audience into my team as a draft, from the portal (issue 11, item 9): the page
behind the action bar's Copy…, through `audience_copy` like the API and the admin."""

from __future__ import annotations

import re

import pytest

from audiences.models import Audience, AudienceState
from governance.models import AuditEvent, Door
from tests.factories import AudienceFactory, AudienceVersionFactory, team
from tests.portal.conftest import htmx
from tests.portal.test_audience_pages import enabled, reason

pytestmark = pytest.mark.django_db


@pytest.fixture
def growths(sandbox):
    audience = AudienceFactory(
        environment=sandbox, name="Spring EU buyers", owner_team=team("growth"), purpose="spring sale"
    )
    AudienceVersionFactory(audience=audience, live=True)
    return audience


def test_another_teams_operator_copies_it_from_its_page(portal, growths):
    client = portal("operator2")  # team retention

    form = client.get(f"/audiences/{growths.pk}/copy/").content.decode()

    assert "<h1>Copy “Spring EU buyers” into your team</h1>" in form
    assert 'id="copy-name" name="name"' in form and 'value="Spring EU buyers (copy)"' in form
    assert re.search(r'<option value="retention" selected>retention</option>', form)

    response = client.post(f"/audiences/{growths.pk}/copy/", {"name": "Spring EU buyers (copy)", "team": "retention"})

    copy = Audience.objects.get(name="Spring EU buyers (copy)")
    assert response.status_code == 303 and response["Location"] == f"/audiences/{copy.pk}/"
    assert (copy.owner_team.name, copy.state, copy.purpose) == ("retention", AudienceState.DRAFT, "spring sale")
    event = AuditEvent.objects.get(action="audience.copy")
    assert (event.door, event.outcome) == (Door.PORTAL, "allowed")
    page = client.get(response["Location"]).content.decode()
    assert "Copied “Spring EU buyers” as the draft “Spring EU buyers (copy)”, owned by retention" in page
    history = page.split('id="history"', 1)[1]
    assert (
        "p-operator2 made the draft &#x27;Spring EU buyers (copy)&#x27;, a copy of &#x27;Spring EU buyers&#x27;"
        in history
    )
    assert enabled(page, "edit-button") and enabled(page, "publish-button")  # the copy is theirs


def test_a_taken_name_is_shown_on_the_form_with_a_free_one(portal, growths, sandbox):
    AudienceFactory(environment=sandbox, name="Spring EU buyers (copy)")
    client = portal("operator2")
    assert 'value="Spring EU buyers (copy 2)"' in client.get(f"/audiences/{growths.pk}/copy/").content.decode()

    response = htmx(client, "post", f"/audiences/{growths.pk}/copy/", {"name": "Spring EU buyers", "team": ""})

    body = response.content.decode()
    assert response.status_code == 409
    assert "An audience with this name already exists in this environment" in body
    assert "Give the copy another name, e.g. &#x27;Spring EU buyers (copy 2)&#x27;" in body
    assert 'aria-invalid="true"' in body and 'value="Spring EU buyers"' in body  # kept to fix
    assert not AuditEvent.objects.filter(action="audience.copy").exists()


def test_who_may_not_copy_sees_why_and_a_forged_post_is_refused(portal, growths):
    client = portal("analyst")

    form = client.get(f"/audiences/{growths.pk}/copy/").content.decode()
    assert not enabled(form, "copy-confirm") and 'id="copy-form"' not in form
    assert "campaign_operator" in reason(form, "copy-confirm")

    forged = client.post(f"/audiences/{growths.pk}/copy/", {"name": "Mine"})
    assert forged.status_code == 403 and "needs one of the roles" in forged.content.decode()
    assert AuditEvent.objects.get(action="audience.copy").outcome == "denied"
    assert not Audience.objects.filter(name="Mine").exists()
    timeline = portal("admin").get("/audit/?action=audience.copy").content.decode()
    assert "p-analyst tried to copy &#x27;Spring EU buyers&#x27; — denied" in timeline


def test_an_audience_of_another_environment_is_not_found(portal, pilot):
    other = AudienceFactory(environment=pilot, name="Pilot only")
    assert portal("operator").get(f"/audiences/{other.pk}/copy/").status_code == 404


def test_the_copy_form_answers_in_a_fixed_number_of_queries(portal, growths, sandbox):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = portal("operator2")

    def queries() -> int:
        client.get(f"/audiences/{growths.pk}/copy/")
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/audiences/{growths.pk}/copy/").status_code == 200
        return len(captured)

    few = queries()
    for n in range(1, 9):
        AudienceFactory(
            environment=sandbox, name="Spring EU buyers (copy)" if n == 1 else f"Spring EU buyers (copy {n})"
        )
    many = queries()

    assert many == few and many <= 10, many
    assert 'value="Spring EU buyers (copy 9)"' in client.get(f"/audiences/{growths.pk}/copy/").content.decode()
