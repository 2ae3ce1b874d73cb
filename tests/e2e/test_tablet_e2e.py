"""The portal on a tablet: every main page fits the width of a portrait tablet (no sideways
scrolling), and the rule builder stays usable there."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from audiences.models import Profile

TABLET = (768, 1024)
PAGES = ["/", "/audiences/", "/audiences/new/", "/approvals/", "/audit/"]


def _overflow(page) -> int:
    """How many CSS pixels the page is wider than the window (0 when it fits)."""
    return page.evaluate("Math.max(0, document.documentElement.scrollWidth - window.innerWidth)")


@pytest.mark.parametrize("username", ["demo-operator", "demo-approver"])
def test_the_main_pages_fit_a_portrait_tablet(open_browser, username):
    tab = open_browser(username, viewport=TABLET)
    for path in PAGES:
        tab.goto(path)
        expect(tab.page.locator("main#main")).to_be_visible()
        assert _overflow(tab.page) == 0, f"{path} scrolls sideways on a tablet"
        tab.shot("tablet" + path.replace("/", "-").rstrip("-"))


def test_the_rule_builder_works_on_a_tablet(open_browser, e2e_data):
    in_eu = Profile.objects.filter(environment=e2e_data["sandbox"], region="EU").count()
    tab = open_browser("demo-operator", viewport=TABLET)
    page = tab.page
    tab.goto("/audiences/new/")
    expect(page.locator("#rule-builder")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name="Add condition").first.click()
    page.get_by_label("Value", exact=True).select_option("EU")
    expect(page.locator("#preview .preview-result")).to_have_attribute("data-count", str(in_eu))
    assert _overflow(page) == 0
    tab.shot("tablet-builder")
