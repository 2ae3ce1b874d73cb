"""Publishing from an audience's page in a real browser (issue 11, item 3): when the job
panel says "Version 1 is live", the same page — without a reload — shows the Published
badge, Archive instead of Delete, and the live version, not "No version is live yet"."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from playwright.sync_api import expect

from audiences.definitions import services as audience_services
from governance.actors import Actor
from governance.models import Door


def test_the_page_shows_the_published_state_when_the_publish_job_ends(open_browser, e2e_data):
    sandbox = e2e_data["sandbox"]
    operator = Actor(user=User.objects.get(username="demo-operator"), environment=sandbox, door=Door.API)
    audience = audience_services.audience_create(
        actor=operator,
        name="EU email draft",
        channel="email",
        purpose="spring sale",
        description="Customers in the EU.",
        rules={"all": [{"attr": "region", "op": "eq", "value": "EU"}]},
        owner_team="growth",
    )
    tab = open_browser("demo-operator")
    page = tab.page
    tab.goto(f"/audiences/{audience.pk}/")
    expect(page.locator("#audience-state")).to_have_text("Draft")
    expect(page.locator("#delete-button")).to_have_text("Delete…")
    expect(page.locator("#no-live-version")).to_be_visible()
    # A mark on this very page: a reload or a navigation would wipe it.
    page.evaluate("window.__samePage = true")

    page.locator("#publish-button").click()
    expect(page.locator("#publish-panel [data-job-state]")).to_have_attribute("data-job-state", "succeeded")
    expect(page.locator("#job-outcome")).to_contain_text(re.compile(r"Version 1 is live: \d+ members"))

    # the rest of the page follows, in place
    expect(page.locator("#audience-state")).to_have_text("Published")
    expect(page.locator("#audience-name")).to_have_attribute("data-state", "published")
    expect(page.locator("#delete-button")).to_have_text("Archive…")
    expect(page.locator("#no-live-version")).to_have_count(0)
    expect(page.locator("#live-version")).to_contain_text("Version 1 is live since")
    members = page.locator("#job-outcome").inner_text().split(": ", 1)[1].split(" members")[0]
    expect(page.locator("#live-reach")).to_have_text(members)
    expect(page.locator("#history li[data-action='audience.published']")).to_have_count(1)
    assert page.evaluate("window.__samePage") is True
    tab.shot("published-in-place")

    # the refreshed bar works: Archive… opens its confirmation
    page.locator("#delete-button").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Archive “EU email draft”?")
