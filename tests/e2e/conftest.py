"""The browser suite: Playwright driving Debian's Chromium headless against a live server.

Chromium comes from the distribution (`apt-get install -y chromium`), never from
Playwright's download; its path is what `which chromium` prints, or CHROMIUM_PATH.
Without Chromium (or Playwright) the tests skip with the reason, unless REQUIRE_BROWSER is
set — CI sets it, so there a missing browser fails the run instead of hiding the suite.

Every test here is marked `e2e` and `slow` (so `-m "not slow"` leaves the suite out).
Each test gets a live server on a fresh database with the demo users of `seed_demo`
(password `demo`) and a small sandbox; Celery tasks run in-process. A screenshot of each
page a flow visits is written to tests/e2e/screenshots/ (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
SANDBOX_PROFILES = 400
SANDBOX_SEED = 11
DEMO_PASSWORD = "demo"  # seed_demo's


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def _missing_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements-dev.txt)"
    if chromium_path() is None:
        return "Chromium is not installed (apt-get install -y chromium) and CHROMIUM_PATH is unset"
    return None


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    here = str(Path(__file__).resolve().parent)
    reason = _missing_reason()
    for item in items:
        if not str(item.fspath).startswith(here):
            continue
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.slow)
        if reason and not os.environ.get("REQUIRE_BROWSER"):
            item.add_marker(pytest.mark.skip(reason=f"{reason}; set REQUIRE_BROWSER=1 to fail instead"))


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Chromium, started for one test and stopped after it.

    Playwright's sync API keeps an event loop running in the test thread, and while it
    runs Django's connections are per asyncio context: the test's ORM calls get their own
    connection, not the one pytest-django serialized the database on. So the browser
    lives only inside a test, after its database is set up and before it is torn down,
    and the async-safety escape hatch is set only for that time (never for the rest of the
    suite, whose `check --deploy` would rightly refuse it).
    """
    reason = _missing_reason()
    if reason:
        pytest.fail(f"REQUIRE_BROWSER is set but {reason}")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()
            # The connections the test's ORM calls opened in the loop's context: closed
            # here, or the test database could not be dropped at the end of the run.
            from django.db import connections

            connections.close_all()


@pytest.fixture
def e2e_data(django_db_serialized_rollback: None, transactional_db: None, eager_celery: Any) -> dict[str, Any]:
    """Demo users and a small sandbox, as `make run` sets them up."""
    from django.conf import settings
    from django.core.management import call_command

    from governance.actors import Actor
    from governance.models import Door, Environment
    from sandbox.services import sandbox_reset

    previous = settings.MARKETERAPI_DEMO
    settings.MARKETERAPI_DEMO = True
    try:
        call_command("seed_demo", stdout=StringIO())
    finally:
        settings.MARKETERAPI_DEMO = previous
    sandbox = Environment.objects.get(slug="sandbox")
    summary = sandbox_reset(
        actor=Actor.system(sandbox, door=Door.CLI), environment=sandbox, profiles=SANDBOX_PROFILES, seed=SANDBOX_SEED
    )
    return {"sandbox": sandbox, "profiles": summary.loaded}


PUBLISHED_NAME = "Spring EU buyers"


def published_twice(sandbox: Any) -> Any:
    """An audience of team growth in the sandbox, published twice by demo-operator through
    the services (version 1 is one an operator could roll back to)."""
    from django.contrib.auth.models import User

    from audiences.definitions import services as audience_services
    from audiences.models import AudienceState
    from audiences.publishing import services as publish
    from governance.actors import Actor
    from governance.models import Door

    operator = Actor(user=User.objects.get(username="demo-operator"), environment=sandbox, door=Door.API)
    audience = audience_services.audience_create(
        actor=operator,
        name=PUBLISHED_NAME,
        channel="email",
        purpose="spring sale",
        description="Customers in the EU who may hear from us by email.",
        rules={"all": [{"attr": "region", "op": "eq", "value": "EU"}]},
        owner_team="growth",
    )
    for _ in range(2):
        outcome = publish.audience_publish(actor=operator, audience=audience)
        assert outcome.approval is None, "the sandbox publishes without approval"
        audience.refresh_from_db()
    assert audience.state == AudienceState.PUBLISHED and audience.live_version.number == 2
    return audience


class Browser:
    """One signed-in person's browser tab, with helpers the flows share."""

    def __init__(self, page: Any, base_url: str, prefix: str) -> None:
        self.page = page
        self.base_url = base_url
        self.prefix = prefix
        self.shots = 0

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def sign_in(self, username: str, password: str = DEMO_PASSWORD) -> None:
        self.goto("/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r"^(?!.*/login/).*$"))

    def sign_out(self) -> None:
        self.page.get_by_role("button", name="Sign out").click()
        self.page.wait_for_url(re.compile(r".*/login/.*"))

    def switch_environment(self, slug: str) -> None:
        self.page.get_by_label("Environment").select_option(slug)
        self.page.wait_for_selector(f'[data-environment="{slug}"]')

    def shot(self, name: str) -> Path:
        """A full-page screenshot named after the flow and the step."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = SCREENSHOTS / f"{self.prefix}-{self.shots:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_browser(e2e_data: dict[str, Any], live_server: Any, browser: Any, request: Any) -> Iterator[Any]:
    """open_browser("demo-operator") → a signed-in tab of that demo user (laptop size)."""
    contexts: list[Any] = []

    def make(username: str | None = None, *, viewport: tuple[int, int] = (1366, 900)) -> Browser:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        context.set_default_timeout(15_000)
        contexts.append(context)
        tab = Browser(context.new_page(), live_server.url, f"{request.node.name}-{username or 'anon'}")
        if username:
            tab.sign_in(username)
        return tab

    yield make
    for context in contexts:
        context.close()
