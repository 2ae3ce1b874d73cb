"""The whole audience workflow in a real browser, as a campaign operator does it in the sandbox:
build an audience with the visual builder, watch the reach waterfall follow the rules, fix a
problem from its hint, save, validate, publish and watch the job, publish a second version,
roll back to the first, and find every step in the audit timeline."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from audiences.models import Audience, Profile


def _waterfall(page) -> dict[str, int]:
    """The reach waterfall the preview panel draws: step → remaining."""
    steps = page.locator("#waterfall g[data-step]")
    return {
        steps.nth(i).get_attribute("data-step"): int(steps.nth(i).get_attribute("data-remaining"))
        for i in range(steps.count())
    }


def _json_view(page):
    """The JSON view of the rules, opened if the builder shows it closed."""
    if page.locator("#json-view").get_attribute("open") is None:
        page.locator("#json-view > summary").click()
    return page.locator("#rules-json")


def _wait_for_count(page, expected: int) -> None:
    expect(page.locator("#preview .preview-result")).to_have_attribute("data-count", str(expected))


def test_an_operator_builds_previews_fixes_publishes_rolls_back_and_finds_it_in_the_timeline(open_browser, e2e_data):
    sandbox = e2e_data["sandbox"]
    everyone = Profile.objects.filter(environment=sandbox).count()
    in_eu = Profile.objects.filter(environment=sandbox, region="EU").count()
    eu_customers = Profile.objects.filter(environment=sandbox, region="EU", lifecycle_stage="customer").count()
    assert everyone > in_eu > eu_customers > 0, "the sandbox must give the rules something to narrow"

    tab = open_browser("demo-operator")
    page = tab.page

    # --- the list, then a new audience ------------------------------------------------------------
    tab.goto("/audiences/")
    tab.shot("audience-list")
    page.locator("#new-audience").click()
    expect(page.locator("#rule-builder")).to_have_attribute("data-ready", "true")
    page.get_by_label("Name").fill("Spring EU buyers")
    page.get_by_label("Owner team").select_option("growth")
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Purpose").fill("Spring sale announcement")
    page.get_by_label("Description").fill("Customers in the EU who may hear from us by email.")

    # No condition yet: everyone matches, and the waterfall starts from everyone.
    _wait_for_count(page, everyone)
    assert _waterfall(page)["matching"] == everyone
    tab.shot("editor-everyone")

    # One condition (a region) narrows it; the waterfall follows.
    page.get_by_role("button", name="Add condition").first.click()
    page.get_by_label("Attribute", exact=True).select_option("region")
    page.get_by_label("Operator", exact=True).select_option("eq")
    page.get_by_label("Value", exact=True).select_option("EU")
    _wait_for_count(page, in_eu)
    assert _waterfall(page)["matching"] == in_eu
    reachable_eu = int(page.locator("#preview .preview-result").get_attribute("data-reachable"))
    assert reachable_eu <= in_eu
    tab.shot("editor-eu")

    # A power user types a second condition in the JSON view, with a typo in the attribute.
    rules = json.loads(_json_view(page).input_value())
    rules["all"].append({"attr": "lifecyle_stage", "op": "eq", "value": "customer"})
    page.locator("#rules-json").fill(json.dumps(rules))
    problem = page.locator(".node-problems li")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("lifecycle_stage")  # the did-you-mean hint, beside the condition
    expect(page.locator(".has-problem")).to_have_count(1)
    expect(page.locator("#preview .preview-invalid")).to_be_visible()
    tab.shot("editor-problem")

    # Saving with the problem saves nothing and keeps it marked beside its condition.
    page.locator("#save-audience").click()
    expect(page.locator(".has-problem").first).to_be_visible()
    assert not Audience.objects.filter(environment=sandbox, name="Spring EU buyers").exists()

    # Fixed from the hint: the preview comes back with the narrower count.
    fixed = json.loads(_json_view(page).input_value())
    fixed["all"][1]["attr"] = "lifecycle_stage"
    page.locator("#rules-json").fill(json.dumps(fixed))
    _wait_for_count(page, eu_customers)
    expect(page.locator(".node-problems li")).to_have_count(0)
    assert _waterfall(page)["matching"] == eu_customers
    tab.shot("editor-fixed")

    page.locator("#save-audience").click()
    page.wait_for_url(re.compile(r"/audiences/\d+/$"))
    audience = Audience.objects.get(environment=sandbox, name="Spring EU buyers")
    assert audience.rules == fixed
    expect(page.locator("#audience-name")).to_have_attribute("data-state", "draft")
    tab.shot("detail-draft")

    # --- validate, then publish version 1 and watch its job --------------------------------------
    page.locator("#validate-button").click()
    result = page.locator("#validation-result")
    expect(result).to_be_visible()
    expect(page.locator('li.check[data-check="schema"]')).to_have_attribute("data-status", "passed")
    expect(page.locator('li.check[data-check="size"]')).to_have_attribute("data-status", "passed")
    expect(result).to_have_attribute("data-valid", "true")
    tab.shot("detail-validated")

    page.locator("#publish-button").click()
    job = page.locator("#publish-panel [data-job-state]")
    expect(job).to_have_attribute("data-job-state", "succeeded")
    expect(page.locator("#job-outcome")).to_contain_text("Version 1 is live")
    tab.shot("detail-published-v1")
    audience.refresh_from_db()
    v1_members = set(audience.live_version.memberships.values_list("profile_id", flat=True))
    assert 0 < len(v1_members) <= eu_customers

    # --- change the rules (everyone in the EU) and publish version 2 -----------------------------
    page.locator("#edit-button").click()
    expect(page.locator("#rule-builder")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name=re.compile("^Remove condition 2")).click()
    _wait_for_count(page, in_eu)
    page.locator("#save-audience").click()
    page.wait_for_url(re.compile(rf"/audiences/{audience.pk}/$"))
    page.locator("#publish-button").click()
    expect(page.locator("#publish-panel [data-job-state]")).to_have_attribute("data-job-state", "succeeded")
    expect(page.locator("#job-outcome")).to_contain_text("Version 2 is live")
    tab.shot("detail-published-v2")
    audience.refresh_from_db()
    assert audience.live_version.number == 2
    assert set(audience.live_version.memberships.values_list("profile_id", flat=True)) > v1_members

    # --- roll back to version 1 ------------------------------------------------------------------
    page.locator("#versions-link").click()
    expect(page.locator('#version-table tr[data-version="2"]')).to_have_attribute("data-live", "true")
    tab.shot("versions-before-rollback")
    page.locator("#rollback-1").click()
    tab.shot("rollback-confirm")
    page.locator("#rollback-confirm").click()
    tab.goto(f"/audiences/{audience.pk}/versions/")
    expect(page.locator("#version-table tr[data-live]")).to_have_attribute("data-version", "3")
    expect(page.locator('#version-table tr[data-version="3"]')).to_contain_text("rollback to v1")
    tab.shot("versions-after-rollback")
    audience.refresh_from_db()
    assert audience.live_version.number == 3
    assert set(audience.live_version.memberships.values_list("profile_id", flat=True)) == v1_members

    # --- every step in the audit timeline --------------------------------------------------------
    tab.goto(f"/audiences/{audience.pk}/")
    page.locator("#timeline-link").click()
    events = page.locator("ol#audit-events li.audit-event")
    expect(events.first).to_be_visible()
    actions = [events.nth(i).get_attribute("data-action") for i in range(events.count())]
    steps = ("audience.create", "audience.edit", "audience.publish", "audience.published", "audience.rollback")
    for action in (*steps, "audience.rolled_back"):
        assert action in actions, (action, actions)
    assert actions.count("audience.publish") >= 2
    assert all(events.nth(i).inner_text().strip() for i in range(events.count())), "each entry says what happened"
    tab.shot("audit-timeline")
