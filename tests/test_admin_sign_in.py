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


# --- the sign-in throttle (issue 12: 25 wrong passwords, then success) ---------------------


@pytest.mark.parametrize("door", ["/login/", "/admin/login/"])
def test_after_five_wrong_passwords_even_the_right_one_is_refused_for_a_while(client, db, door, settings):
    settings.SIGNIN_MAX_FAILURES, settings.SIGNIN_LOCKOUT_SECONDS = 5, 900
    user = UserFactory(username="engineer", is_staff=True, groups=["admin"])
    user.set_password("pw-correct-horse")
    user.save()

    for _ in range(5):
        client.post(door, {"username": "engineer", "password": "guess"})
    response = client.post(door, {"username": "engineer", "password": "pw-correct-horse"})

    page = response.content.decode()
    assert response.status_code == 200 and "Too many failed sign-ins" in page and "15 minute" in page
    assert "_auth_user_id" not in client.session


def test_the_lockout_ends_and_a_success_clears_the_count(client, db, settings, monkeypatch):
    from governance.limits import signin

    settings.SIGNIN_MAX_FAILURES, settings.SIGNIN_LOCKOUT_SECONDS = 3, 60
    user = UserFactory(username="operator", groups=["campaign_operator"])
    user.set_password("pw-correct-horse")
    user.save()
    clock = [1_000_000.0]
    monkeypatch.setattr(signin.time, "time", lambda: clock[0])

    for _ in range(3):
        client.post("/login/", {"username": "operator", "password": "guess"})
    assert (
        "Too many failed"
        in client.post("/login/", {"username": "operator", "password": "pw-correct-horse"}).content.decode()
    )
    clock[0] += 61

    response = client.post("/login/", {"username": "operator", "password": "pw-correct-horse"})

    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)
    assert signin.seconds_locked("operator", None) == 0


def test_one_address_trying_many_accounts_is_slowed_down_too(client, db, settings):
    settings.SIGNIN_MAX_FAILURES = 3
    for name in ("a", "b", "c"):
        client.post("/login/", {"username": name, "password": "guess"}, REMOTE_ADDR="198.51.100.4")
    user = UserFactory(username="d", groups=["analyst"])
    user.set_password("pw-correct-horse")
    user.save()

    response = client.post("/login/", {"username": "d", "password": "pw-correct-horse"}, REMOTE_ADDR="198.51.100.4")

    assert "Too many failed sign-ins" in response.content.decode()
