"""The layout every portal page shares: sign-in, environment banner and switcher, roles,
problems in place and friendly error pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.portal.conftest import htmx

pytestmark = pytest.mark.django_db


def test_signed_out_visitors_are_sent_to_sign_in():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_sign_in_with_a_password_then_sign_out(persona, sandbox):
    user = persona("analyst")
    user.set_password("pw-analyst-1")
    user.save()
    client = Client()
    page = client.get("/login/")
    assert b'<label for="id_username">' in page.content
    wrong = client.post("/login/", {"username": user.username, "password": "nope"})
    assert wrong.status_code == 200 and b"didn't match" in wrong.content
    signed_in = client.post("/login/", {"username": user.username, "password": "pw-analyst-1"})
    assert signed_in.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert user.username.encode() in home.content
    client.post("/logout/")
    assert client.get("/").status_code == 302


def test_every_page_shows_the_environment_and_the_roles(portal, pilot):
    sandbox_page = portal("operator").get("/").content.decode()
    assert 'data-environment="sandbox"' in sandbox_page and "SANDBOX" in sandbox_page
    assert '<span class="role">campaign_operator</span>' in sandbox_page
    pilot_page = portal("approver", pilot).get("/").content.decode()
    assert 'data-environment="pilot"' in pilot_page and "SANDBOX" not in pilot_page


def test_switching_environment_changes_where_pages_work(portal, pilot):
    client = portal("operator")
    response = client.post("/environment/", {"environment": "pilot", "next": "/audiences/12/"})
    assert response.status_code == 302
    # An object of the old environment would not exist in the new one: back to the list.
    assert response["Location"] == "/audiences/"
    assert 'data-environment="pilot"' in client.get("/").content.decode()


def test_switching_to_an_unknown_environment_shows_the_hint_in_place(portal):
    response = portal("operator").post("/environment/", {"environment": "nowhere"})
    assert response.status_code == 404
    body = response.content.decode()
    assert 'class="problem"' in body and "Use one of:" in body and "sandbox" in body
    # still a page of the portal, with the layout
    assert 'data-environment="sandbox"' in body


def test_a_problem_requested_by_htmx_is_a_fragment(portal):
    response = htmx(portal("operator"), "post", "/environment/", {"environment": "nowhere"})
    assert response.status_code == 404
    body = response.content.decode()
    assert body.lstrip().startswith('<div class="problem"') and "<html" not in body


def test_an_unknown_page_is_a_friendly_404_with_the_request_id(portal):
    response = portal("operator").get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content and b"Request id" in response.content


def test_a_crash_is_a_friendly_500_page_with_the_request_id(portal, monkeypatch):
    from governance.limits import selectors as quotas

    def broken(actor):
        raise RuntimeError("the quota table is on fire")

    monkeypatch.setattr(quotas, "quota_statuses", broken)
    client = portal("operator")
    client.raise_request_exception = False

    response = client.get("/")

    assert response.status_code == 500
    body = response.content.decode()
    assert "<h1>Something went wrong on our side</h1>" in body
    assert re.search(r"Request id: <code>req_[0-9a-f]{32}</code>", body)
    assert "on fire" not in body and "Traceback" not in body
    assert 'data-environment="sandbox"' in body  # the portal's layout, never Django's page
