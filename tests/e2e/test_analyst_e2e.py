"""An analyst in a real browser (issue 6): they see no edit controls, and a quota past 80 %
shows its warning.

demo-analyst (role analyst, no team) opens a published audience of team growth in the
sandbox. The list offers "New audience" only disabled, with the reason and the roles that
may; the audience's Edit, Publish, Archive and Copy are disabled, the bar saying once why
(issue 11, item 9), and pressing them does nothing; the versions page offers no rollback
and says why; the editor, the new-audience page and the rollback confirmation, opened by
their addresses, refuse in words instead of an error page. Then two of the analyst's quotas
are used (one to 82 %, one to 70 %) and home, reloaded, warns about the first only."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.db import transaction
from playwright.sync_api import expect

from audiences.models import AudienceState
from governance.actors import Actor
from governance.limits.services import quota_consume
from governance.models import Door
from tests.e2e.conftest import PUBLISHED_NAME as NAME
from tests.e2e.conftest import published_twice

# What the policy says to an analyst about each refused action: why, and who may.
WHO_MAY = "needs one of the roles: campaign_operator, developer, admin. You have: analyst."
ASK = "Ask an admin to give you one of the roles: campaign_operator, developer, admin."


def _expect_disabled_with_reason(page, element_id: str, label: str, action: str) -> None:
    """The control is shown, announced as disabled, and its reason says who may use it."""
    control = page.locator(f"#{element_id}")
    expect(control).to_be_visible()
    expect(control).to_have_text(label)
    expect(control).to_have_attribute("aria-disabled", "true")
    expect(control).to_be_disabled()  # Playwright counts aria-disabled, as assistive technology does
    expect(control).to_have_accessible_description(re.compile(re.escape(f"{action} {WHO_MAY}")))
    reason = page.locator(f"#{element_id}-reason")
    expect(reason).to_be_visible()
    expect(reason).to_have_text(f"{action} {WHO_MAY} {ASK}")


def _expect_refused_in_words(response, page, heading: str, refusal: str, back: str) -> None:
    """A page that says why in the layout (title, reason, hint, a way back), not an error page."""
    assert response.status == 403
    expect(page.locator(".env-banner")).to_be_visible()  # the portal's layout, not a bare error
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    notice = page.locator("#editor-refused")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(refusal)
    expect(notice.locator(".hint")).to_have_text(ASK)
    expect(page.get_by_role("link", name=back)).to_be_visible()
    # nothing of the editor is there to use
    expect(page.locator("#audience-form")).to_have_count(0)
    expect(page.locator("#save-audience")).to_have_count(0)


def test_an_analyst_sees_no_edit_controls_and_a_quota_past_80_percent_warns(open_browser, e2e_data):
    sandbox = e2e_data["sandbox"]
    audience = published_twice(sandbox)
    detail_url = f"/audiences/{audience.pk}/"

    tab = open_browser("demo-analyst")
    page = tab.page
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))

    # --- the list: the audience is there, "New audience" only disabled with the reason --------------
    tab.goto("/audiences/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Audiences")
    row = page.locator(f'#audience-table tr[data-audience-id="{audience.pk}"]')
    expect(row).to_contain_text(NAME)
    expect(row).to_contain_text("growth")
    expect(page.locator('a#new-audience, a[href="/audiences/new/"]')).to_have_count(0)
    _expect_disabled_with_reason(page, "new-audience", "New audience", "Create audiences")
    tab.shot("audience-list")

    # --- the audience: Edit, Publish, Archive, Copy disabled, the bar saying once who may --------------
    row.get_by_role("link", name=NAME).click()
    expect(page).to_have_url(re.compile(re.escape(detail_url) + "$"))
    expect(page.locator("#audience-state")).to_have_text("Published")
    said_once = f"Edit, Publish, Archive and Copy need {WHO_MAY.removeprefix('needs ')} {ASK}"
    for element_id, label in (("edit-button", "Edit"), ("publish-button", "Publish"), ("delete-button", "Archive")):
        control = page.locator(f"#{element_id}")
        expect(control).to_have_text(label)
        expect(control).to_have_attribute("aria-disabled", "true")
        expect(control).to_have_accessible_description(said_once)
    expect(page.locator("#copy-button")).to_have_accessible_description(said_once)
    reasons = page.locator("#action-bar .disabled-reason")
    expect(reasons).to_have_count(1)  # one line for the bar, not a paragraph under each button
    expect(reasons).to_have_text(said_once)
    expect(reasons).to_be_visible()
    actions = page.locator("#audience-actions")
    expect(actions.locator('a[href$="/edit/"], a[href$="/delete/"], form[action$="/publish/"]')).to_have_count(0)
    expect(actions.locator('[data-allowed="true"]')).to_have_count(0)
    tab.shot("audience-detail")

    # A disabled control can still be reached with the keyboard, and pressing it does nothing:
    # no job starts, the page stays.
    for element_id in ("publish-button", "edit-button", "delete-button"):
        page.locator(f"#{element_id}").focus()
        expect(page.locator(f"#{element_id}")).to_be_focused()
        page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(detail_url) + "$"))
    expect(page.locator("#publish-panel")).to_be_empty()

    # What an analyst may do here is read: Validate only checks, and it answers in place.
    page.locator("#validate-button").click()
    checks = page.locator("#validation-panel #validation-result")
    expect(checks).to_be_visible()
    expect(checks.locator("li.check")).not_to_have_count(0)
    expect(page.locator("#validation-panel .problem[role=alert]")).to_have_count(0)
    tab.shot("audience-validated")

    # --- the versions: both listed, no rollback offered, the reason said once ------------------------
    page.locator("#versions-link").click()
    expect(page).to_have_url(re.compile(re.escape(f"{detail_url}versions/") + "$"))
    versions = page.locator("#version-table tbody tr")
    expect(versions).to_have_count(2)
    expect(page.locator('#version-table tr[data-version="2"][data-live="true"]')).to_be_visible()
    expect(page.locator('#version-table tr[data-version="1"]')).to_have_attribute("data-state", "ready")
    expect(page.get_by_role("link", name=re.compile("Roll back"))).to_have_count(0)
    expect(page.locator('[id^="rollback-"]:not(#rollback-reason)')).to_have_count(0)
    expect(page.locator("#rollback-reason")).to_have_text(
        f"You cannot roll back: Roll an audience back to an earlier version {WHO_MAY} {ASK}"
    )
    tab.shot("versions")

    # The rollback confirmation, opened by its address, offers only a disabled button.
    tab.goto(f"{detail_url}rollback/?version=1")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Roll “{NAME}” back to version 1?")
    expect(page.locator("#rollback-form")).to_have_count(0)
    _expect_disabled_with_reason(page, "rollback-confirm", "Roll back", "Roll an audience back to an earlier version")
    tab.shot("rollback-refused")

    # --- the editor and the new-audience page, opened by their addresses ------------------------------
    response = tab.goto(f"{detail_url}edit/")
    _expect_refused_in_words(
        response,
        page,
        heading=f"Edit “{NAME}”",
        refusal=f"You may not edit this audience. Edit audiences {WHO_MAY}",
        back=f"Back to “{NAME}”",
    )
    tab.shot("editor-refused")

    response = tab.goto("/audiences/new/")
    _expect_refused_in_words(
        response,
        page,
        heading="New audience",
        refusal=f"You may not create audiences in Sandbox. Create audiences {WHO_MAY}",
        back="Back to the audiences",
    )
    tab.shot("new-refused")

    # Nothing the analyst did changed the audience.
    audience.refresh_from_db()
    assert audience.state == AudienceState.PUBLISHED and audience.live_version.number == 2
    assert audience.versions.count() == 2

    # --- home: no warning yet; then one quota past 80 %, one below ------------------------------------
    tab.goto("/")
    expect(page.locator(".quota")).to_have_count(3)
    expect(page.locator(".quota-warning")).to_have_count(0)
    expect(page.locator(".quota[data-level=warn]")).to_have_count(0)
    tab.shot("home-before")

    analyst = Actor(user=User.objects.get(username="demo-analyst"), environment=sandbox, door=Door.PORTAL)
    with transaction.atomic():
        quota_consume(analyst, "export-masked", 41)  # of 50 a month: 82 %
    with transaction.atomic():
        quota_consume(analyst, "export-pii", 7)  # of 10 a month: 70 %

    page.reload()
    masked = page.locator("#quota-export-masked")
    expect(masked).to_have_attribute("data-level", "warn")
    expect(page.locator(".quota[data-level=warn]")).to_have_count(1)
    expect(page.locator(".quota[data-level=warn]")).to_be_visible()
    expect(masked.get_by_role("progressbar", name="Masked exports per user")).to_have_attribute(
        "aria-valuetext", "41 of 50 used"
    )
    expect(masked.locator(".bar")).to_have_class(re.compile(r"\bwarn\b"))
    expect(masked).to_contain_text("41 of 50 used this month (82 %) · 9 left")
    warning = masked.locator(".quota-warning")
    expect(warning).to_be_visible()
    expect(warning).to_have_text("Warning: 82 % of this quota is used; 9 left until it resets.")

    pii = page.locator("#quota-export-pii")
    expect(pii).to_have_attribute("data-level", "ok")
    expect(pii).to_contain_text("7 of 10 used this month (70 %) · 3 left")
    expect(pii.locator(".quota-warning")).to_have_count(0)
    expect(pii.locator(".bar")).not_to_have_class(re.compile(r"\b(warn|full)\b"))
    expect(page.locator("#quota-publish")).to_have_attribute("data-level", "ok")
    expect(page.locator(".quota-warning")).to_have_count(1)  # only the one past 80 %
    tab.shot("home-quota-warning")

    assert script_errors == [], "no page may fail in the browser: " + "; ".join(script_errors)
