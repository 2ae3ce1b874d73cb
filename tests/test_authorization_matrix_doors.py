"""The authorization matrix of the other two doors: every route of the portal and of the
admin site × every persona (and anonymous) × own / foreign / other-environment object,
built on the API matrix's world (tests/test_authorization_matrix.py). The routes come from
the URL configuration (tests/routes.py door_routes), so a new page is covered by itself.

What holds for every cell:

- nothing answers 5xx;
- an anonymous caller is sent to sign in (the portal's /login/, the admin's /admin/login/);
- an object of another environment answers exactly as an id that does not exist (the id
  does not leak), and never 200;
- a refused change (a POST answered 403) is in the audit trail: exactly one `denied`
  event of that person;
- a person without a role gets no portal page but the home page's refusal (403);
- the admin site is for staff with the admin or developer role: everyone else is sent to
  its sign-in page, and a page a staff member's role does not cover answers 403.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Max
from django.test import Client

from governance.access.selectors import SESSION_ENVIRONMENT_KEY
from governance.models import AuditEvent
from tests.routes import door_routes
from tests.test_authorization_matrix import (
    FOREIGN,
    MATRIX_PERSONAS,
    MISSING_ID,
    OTHER_ENV,
    OWN,
    Call,
    World,
    build_world,
)
from tests.test_authorization_matrix import PARAM_BUILDERS as API_PARAMS

_PARAM = re.compile(r"{(\w+)}")
PERSONAS_AND_ANONYMOUS = (*MATRIX_PERSONAS, "anonymous")
# Portal paths that are not pages of the product: the API's catch-all, sign-in and -out.
# Not pages of the portal: the API's own matrix covers /api; a signed export download link is
# authorized by its signature (tests/audiences/test_exports.py: altered, expired and other
# people's links are refused); /metrics is Prometheus's scrape, let in by network or token
# only (tests/observability/test_prometheus.py).
NOT_PAGES = re.compile(r"^(GET|POST) /((api|login|logout|metrics)$|downloads/)")
STAFF = ("admin", "developer")


def portal_routes() -> list[str]:
    return sorted(k for k in door_routes("") if not NOT_PAGES.match(k))


def admin_routes() -> list[str]:
    # One route per page kind: the changelist, add, change, delete and history of each model.
    # (The sign-in, sign-out, password and helper views are not pages of data.)
    model_page = re.compile(r"^GET /admin(/\w+/\w+(/\{object_id\}(/(change|delete|history))?|/add)?)?$")
    return sorted(k for k in door_routes("admin/", ("GET",)) if model_page.match(k))


def _ownerships(template: str) -> list[str]:
    names = _PARAM.findall(template)
    if not names:
        return [OWN]
    if names[0] == "object_id":
        return [OWN]  # the admin site spans environments: an admin's object is anywhere
    if names[0] == "approval_id":
        # The portal's approvals span every environment the person may act in (the inbox
        # and home page list them all, docs/portal.md), so there is no other environment.
        return [OWN, FOREIGN]
    if names[0] == "audience_id":
        return [OWN, FOREIGN, OTHER_ENV]
    return [OWN, OTHER_ENV]


def _fill(template: str, world: World, persona: str, ownership: str, missing: bool) -> str:
    call = Call(world, "analyst" if persona == "anonymous" else persona, ownership)
    values = {}
    for name in _PARAM.findall(template):
        if name == "object_id":
            values[name] = MISSING_ID if missing else _any_object(template)
        else:
            values[name] = MISSING_ID if missing else API_PARAMS[name](call)
    return template.format(**values)


def _any_object(template: str) -> str:
    """/admin/<app>/<model>/{object_id}/… → the id of one object of that model (or a missing one)."""
    from django.apps import apps

    app_label, model_name = template.split("/")[2:4]
    found = apps.get_model(app_label, model_name)._default_manager.order_by("pk").values_list("pk", flat=True).first()
    return MISSING_ID if found is None else str(found)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        with transaction.atomic():
            built = build_world(str(tmp_path_factory.mktemp("drops")))
            for persona in STAFF:
                built.users[persona].is_staff = True
                built.users[persona].save(update_fields=["is_staff"])
            yield built
            transaction.set_rollback(True)


def _client(world: World, persona: str) -> Client:
    client = Client(raise_request_exception=False)
    if persona != "anonymous":
        client.force_login(world.users[persona])
        session = client.session
        session[SESSION_ENVIRONMENT_KEY] = "sandbox"
        session.save()
    return client


def _visit(world: World, persona: str, method: str, path: str) -> tuple[int, str, list[tuple[str, str, Any]]]:
    client = _client(world, persona)
    with transaction.atomic():
        last = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0
        response = getattr(client, method.lower())(path + ("/" if not path.endswith("/") else ""))
        audits = list(AuditEvent.objects.filter(id__gt=last).values_list("action", "outcome", "actor_user_id"))
        transaction.set_rollback(True)
    return response.status_code, response.get("Location", ""), audits


def _changes(template: str) -> bool:
    """Whether the portal form at `template` changes state (a policy action that is unsafe)."""
    from django.urls import resolve

    from governance.policy.actions import ACTIONS
    from portal.web import PORTAL_ACTIONS

    path = template.replace("{audience_id}", "1").replace("{approval_id}", "1").replace("{job_id}", "1")
    action = PORTAL_ACTIONS.get(resolve(path + "/").view_name)
    return action is not None and ACTIONS[action].unsafe


# The admin site answers every non-staff person alike (its sign-in page): one of each kind
# keeps its ~150 pages x personas affordable.
ADMIN_PERSONAS = ("admin", "developer", "analyst", "nobody", "anonymous")


def _check(
    world: World,
    key: str,
    sign_in: str,
    may_open: Callable[[str, str], bool] | None = None,
    personas: tuple[str, ...] = PERSONAS_AND_ANONYMOUS,
) -> list[str]:
    method, template = key.split(" ", 1)
    found = []
    for ownership in _ownerships(template):
        for persona in personas:
            path = _fill(template, world, persona, ownership, missing=False)
            status, location, audits = _visit(world, persona, method, path)
            where = f"  {persona:<10} {ownership:<9} {method} {path}"
            if status >= 500:
                found.append(f"{where}: {status}")
                continue
            if status == 405:
                continue  # the page does not take this method: nothing is looked up or done
            if persona == "anonymous":
                if status != 302 or not location.startswith(sign_in):
                    found.append(f"{where}: {status} {location!r}, expected a redirect to {sign_in}")
                continue
            if may_open is not None and not may_open(persona, key):
                if status != 302 or not location.startswith(sign_in):
                    found.append(f"{where}: {status}, expected a redirect to {sign_in} (not admin staff)")
                continue
            if ownership == OTHER_ENV:
                absent, _, _ = _visit(world, persona, method, _fill(template, world, persona, ownership, True))
                if status == 200 or status != absent:
                    found.append(f"{where}: {status} for another environment's object, {absent} for a missing id")
            if method == "POST" and status == 403 and _changes(template):
                user = world.users[persona].pk
                denied = [a for a in audits if a[1] == "denied" and a[2] == user]
                if len(denied) != 1:
                    found.append(f"{where}: refused change wrote {audits}, expected one denied event of user {user}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("key", portal_routes())
def test_portal_route_matrix(world, db, key):
    mismatches = _check(world, key, "/login/")
    # A person without a role opens no page of the product.
    method, template = key.split(" ", 1)
    if method == "GET":
        status, _, _ = _visit(world, "nobody", "GET", _fill(template, world, "nobody", OWN, False))
        if status not in (403, 404, 405) and template != "/":
            mismatches.append(f"  nobody     own       GET {template}: {status}, expected 403")
    assert not mismatches, f"{key}:\n" + "\n".join(mismatches)


def _admin_may_open(persona: str, key: str) -> bool:
    return persona in STAFF


@pytest.mark.slow
@pytest.mark.parametrize("key", admin_routes())
def test_admin_route_matrix(world, db, key):
    mismatches = _check(world, key, "/admin/login/", may_open=_admin_may_open, personas=ADMIN_PERSONAS)
    assert not mismatches, f"{key}:\n" + "\n".join(mismatches)


def test_every_portal_and_admin_route_is_in_the_matrix():
    portal, admin = portal_routes(), admin_routes()

    assert "GET /audiences/{audience_id}" in portal and "POST /audiences/{audience_id}/publish" in portal
    assert "GET /admin/audiences/audience/{object_id}/change" in admin
    unknown = {p for key in portal for p in _PARAM.findall(key)} - set(API_PARAMS)
    assert not unknown, f"portal path parameters the matrix cannot fill: {unknown}"
