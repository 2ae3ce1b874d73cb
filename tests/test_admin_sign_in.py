"""Signing in to the admin site (marketerapi/admin/site.py): a person whose password is right
but who has no admin access is told so and pointed to the portal (issue 11, item 10)."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory


def _sign_in(client, username: str, password: str = "pw-correct-horse"):  # noqa: S107
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


@pytest.mark.parametrize(
    ("is_staff", "groups"),
    [(False, ["campaign_operator", "growth"]), (True, ["analyst"]), (False, [])],
)
def test_a_marketer_with_the_right_password_is_told_the_admin_is_not_for_them(client, db, is_staff, groups):
    user = UserFactory(username="marketer", is_staff=is_staff, groups=groups)
    user.set_password("pw-correct-horse")
    user.save()

    response = _sign_in(client, "marketer")

    page = response.content.decode()
    assert response.status_code == 200
    assert "The account marketer has no access to the admin site" in page
    assert '<a href="/login/">portal</a>' in page
    assert "enter the correct username and password" not in page
    assert "_auth_user_id" not in client.session


def test_a_wrong_password_still_gets_the_usual_message(client, db):
    user = UserFactory(username="marketer", is_staff=False, groups=["analyst"])
    user.set_password("pw-correct-horse")
    user.save()

    page = _sign_in(client, "marketer", "wrong").content.decode()

    assert "enter the correct username and password" in page
    assert "no access to the admin site" not in page


@pytest.mark.parametrize("role", ["admin", "developer"])
def test_platform_engineers_get_in(client, db, role):
    user = UserFactory(username="engineer", is_staff=True, groups=[role])
    user.set_password("pw-correct-horse")
    user.save()

    response = _sign_in(client, "engineer")

    assert response.status_code == 302 and response["Location"] == "/admin/"
