"""Accessibility checks a browser can make on the main pages: every form control has a
name a screen reader reads (a label, aria-label or aria-labelledby), and text has WCAG AA
contrast against what is behind it (4.5:1, or 3:1 for large text)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import published_twice

PAGES = ["/", "/audiences/", "/audiences/new/", "/approvals/", "/audit/"]

UNNAMED_CONTROLS = """
() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button'))
  .filter(el => el.offsetParent !== null)
  .filter(el => {
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby') || el.getAttribute('title')
      || (el.tagName === 'BUTTON' && el.textContent.trim());
    return !named;
  })
  .map(el => el.outerHTML.slice(0, 160))
"""

LOW_CONTRAST = """
() => {
  const rgba = (s) => { const m = s.match(/[\\d.]+/g) || []; return m.map(Number).concat([1]).slice(0, 4); };
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const blend = (top, bottom) => {
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  };
  const background = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = rgba(getComputedStyle(node).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    let color = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) color = blend(layers[i], color);
    return color;
  };
  const found = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.offsetParent === null && getComputedStyle(el).position !== 'fixed') continue;
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || parseFloat(style.opacity) === 0) continue;
    const bg = background(el);
    const fg = blend(rgba(style.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) {
      const what = `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 40)}"`;
      found.push(`${ratio.toFixed(2)} ${what}`);
    }
  }
  return found;
}
"""


@pytest.mark.parametrize("username", ["demo-operator", "demo-analyst"])
def test_controls_are_named_and_text_has_aa_contrast(open_browser, e2e_data, username):
    audience = published_twice(e2e_data["sandbox"])
    pages = [*PAGES, *(f"/audiences/{audience.pk}/{tail}" for tail in ("", "versions/", "members/"))]
    tab = open_browser(username)
    for path in pages:
        tab.goto(path)
        expect(tab.page.locator("main#main")).to_be_visible()
        if path == "/audiences/new/" and username == "demo-operator":
            expect(tab.page.locator("#rule-builder")).to_have_attribute("data-ready", "true")
            tab.page.get_by_role("button", name="Add condition").first.click()
            expect(tab.page.locator("#preview .preview-result")).to_be_visible()
        assert tab.page.evaluate(UNNAMED_CONTROLS) == [], path
        assert tab.page.evaluate(LOW_CONTRAST) == [], path
