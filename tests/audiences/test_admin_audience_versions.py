"""Audience versions in the admin site: listed and shown, never added, changed or deleted;
and the list pages of audiences, versions, suppressions and restrictions load with their
columns, filters and search."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audiences.models import AudienceVersion, RegionalRestriction, SuppressionEntry, SuppressionList
from tests.factories import AudienceFactory, AudienceVersionFactory, ProfileFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "admin:audiences_audience_changelist",
    "admin:audiences_audienceversion_changelist",
    "admin:audiences_suppressionlist_changelist",
    "admin:audiences_suppressionentry_changelist",
    "admin:audiences_regionalrestriction_changelist",
]


@pytest.fixture(params=["superuser", "admin_role"])
def staff(request, client, db):
    """A signed-in admin: a superuser, and a staff user who only holds the admin role."""
    if request.param == "superuser":
        user = UserFactory(username="root", is_staff=True, is_superuser=True, groups=["admin"])
    else:
        user = UserFactory(username="ada", is_staff=True, groups=["admin"])
    client.force_login(user)
    return client


@pytest.fixture
def version(sandbox):
    audience = AudienceFactory(environment=sandbox, name="EU customers")
    AudienceVersionFactory(audience=audience, live=True, memberships=[ProfileFactory(environment=sandbox, region="EU")])
    version = AudienceVersionFactory(
        audience=audience, live=True, memberships=[ProfileFactory(environment=sandbox, region="EU") for _ in range(2)]
    )
    glob = SuppressionList.objects.get(environment=sandbox, is_global=True)
    SuppressionEntry.objects.create(suppression_list=glob, external_id="cust-x")
    RegionalRestriction.objects.create(
        environment=sandbox, region="EU", kind="explicit_consent", description="EU profiles need explicit consent"
    )
    return version


@pytest.mark.parametrize("name", CHANGELISTS)
def test_the_changelists_load(staff, version, name):
    response = staff.get(reverse(name))

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("name", CHANGELISTS)
def test_the_changelists_search_and_filter(staff, version, name):
    response = staff.get(reverse(name), {"q": "EU"})

    assert response.status_code == 200
    assert "e=1" not in response.get("Location", "")


def test_versions_are_listed_with_their_counts_and_the_live_one_marked(staff, version):
    response = staff.get(reverse("admin:audiences_audienceversion_changelist"), {"q": "EU customers"})

    changelist = response.context["cl"]
    assert [v.number for v in changelist.result_list] == [2, 1]
    text = response.content.decode()
    assert "EU customers v2" in text and "EU customers v1" in text
    assert "icon-yes.svg" in text  # the live column


def test_the_audience_list_links_to_its_versions(staff, version):
    response = staff.get(reverse("admin:audiences_audience_changelist"))
    link = reverse("admin:audiences_audienceversion_changelist") + f"?audience__id__exact={version.audience_id}"
    assert link in response.content.decode()

    filtered = staff.get(link)

    assert filtered.status_code == 200
    assert {v.audience_id for v in filtered.context["cl"].result_list} == {version.audience_id}


def test_a_version_is_shown_read_only(staff, version):
    response = staff.get(reverse("admin:audiences_audienceversion_change", args=[version.pk]))

    assert response.status_code == 200
    text = response.content.decode()
    assert 'name="_save"' not in text and 'name="_continue"' not in text
    assert reverse("admin:audiences_audienceversion_delete", args=[version.pk]) not in text
    assert "EU customers" in text


def test_versions_cannot_be_added_changed_or_deleted(staff, version):
    before = list(AudienceVersion.objects.order_by("pk").values())

    add = staff.get(reverse("admin:audiences_audienceversion_add"))
    add_post = staff.post(reverse("admin:audiences_audienceversion_add"), {"number": 9, "channel": "sms"})
    change = staff.post(
        reverse("admin:audiences_audienceversion_change", args=[version.pk]),
        {"number": 9, "channel": "sms", "members": 0, "_save": "Save"},
    )
    delete_page = staff.get(reverse("admin:audiences_audienceversion_delete", args=[version.pk]))
    delete = staff.post(reverse("admin:audiences_audienceversion_delete", args=[version.pk]), {"post": "yes"})
    bulk = staff.post(
        reverse("admin:audiences_audienceversion_changelist"),
        {"action": "delete_selected", "_selected_action": [version.pk], "post": "yes"},
    )

    assert add.status_code == add_post.status_code == 403
    assert change.status_code == 403
    assert delete_page.status_code == delete.status_code == 403
    assert bulk.status_code in (200, 302)  # no such action: the list is shown again
    assert list(AudienceVersion.objects.order_by("pk").values()) == before


def test_the_changelist_offers_no_add_button_and_no_delete_action(staff, version):
    response = staff.get(reverse("admin:audiences_audienceversion_changelist"))

    text = response.content.decode()
    assert reverse("admin:audiences_audienceversion_add") not in text
    assert "delete_selected" not in text


def test_people_outside_the_admin_site_roles_do_not_get_in(client, version):
    operator = UserFactory(username="op", is_staff=True, groups=["campaign_operator", "growth"])
    client.force_login(operator)

    response = client.get(reverse("admin:audiences_audienceversion_changelist"))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
