"""The portal's editor and the owner team (issue 12, hole 1): a new owner is a transfer, through
`audience_transfer`; a share of change is offered only the current owner and refused a takeover."""

from __future__ import annotations

import pytest

from audiences.models import Audience
from governance.access.objectperms import share
from governance.models import AuditEvent
from tests.factories import AudienceFactory, team
from tests.portal.test_editor import form
from tests.refusals import denied_event

pytestmark = pytest.mark.django_db


def owner_of(audience: Audience) -> str:
    return Audience.objects.select_related("owner_team").get(pk=audience.pk).owner_team.name


def test_the_portal_editor_offers_a_share_holder_only_the_current_owner_and_refuses_a_takeover(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="EU customers", owner_team__name="growth")
    share(audience, team("retention"), "change")
    client = portal("operator2")

    page = client.get(f"/audiences/{audience.pk}/edit/").content.decode()
    assert '<option value="growth" selected>' in page and '<option value="retention">' not in page
    response = client.post(f"/audiences/{audience.pk}/edit/", form(name="EU customers", owner_team="retention"))

    assert response.status_code == 403
    assert owner_of(audience) == "growth"
    denied_event(client.user, "audience.transfer")


def test_the_portal_editor_transfers_for_the_owning_team(portal, sandbox):
    audience = AudienceFactory(environment=sandbox, name="EU customers", owner_team__name="growth")
    client = portal("operator")
    client.user.groups.add(team("retention"))  # the page offers the person's own teams

    page = client.get(f"/audiences/{audience.pk}/edit/").content.decode()
    assert '<option value="retention">' in page
    response = client.post(f"/audiences/{audience.pk}/edit/", form(name="EU customers", owner_team="retention"))

    assert response.status_code == 303, response.content.decode()[:1500]
    assert owner_of(audience) == "retention"
    assert AuditEvent.objects.get(action="audience.transfer").door == "portal"
