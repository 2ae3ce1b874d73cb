"""Sign-in, the environment banner and switcher, in a real browser."""

from __future__ import annotations

import re


def test_a_demo_user_signs_in_sees_the_sandbox_banner_and_switches_to_pilot(open_browser):
    tab = open_browser()
    tab.goto("/")
    assert "/login/" in tab.page.url
    tab.shot("sign-in")
    tab.sign_in("demo-operator")
    banner = tab.page.locator(".env-banner")
    assert "SANDBOX" in banner.inner_text()
    assert "campaign_operator" in tab.page.locator(".roles").inner_text()
    tab.shot("home-sandbox")

    tab.switch_environment("pilot")
    assert "pilot" in tab.page.locator(".env-banner").inner_text().lower()
    assert "SANDBOX" not in tab.page.locator(".env-banner").inner_text()
    tab.shot("home-pilot")

    tab.sign_out()
    assert re.search(r"/login/", tab.page.url)


def test_a_wrong_password_is_refused_in_place(open_browser):
    tab = open_browser()
    tab.goto("/login/")
    tab.page.get_by_label("Username").fill("demo-analyst")
    tab.page.get_by_label("Password").fill("not-the-password")
    tab.page.get_by_role("button", name="Sign in").click()
    assert tab.page.get_by_role("alert").inner_text().startswith("Your username and password didn't match")
    tab.shot("sign-in-refused")


def test_the_layout_is_keyboard_usable_from_the_skip_link(open_browser):
    tab = open_browser("demo-analyst")
    tab.page.keyboard.press("Tab")
    focused = tab.page.evaluate("document.activeElement.textContent")
    assert focused.strip() == "Skip to content"
