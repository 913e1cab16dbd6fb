"""The dashboard's browser tests: one headless Chromium per test module, a real gateway per
test (the top conftest's ``gateway``: its own PostgreSQL database, hypercorn on port 0, the
simulated carrier with the rules below), every page checked for browser console errors.

Chromium and chromedriver are Debian's ``chromium`` and ``chromium-driver`` (``.ci/run``
installs them). Screenshots go to ``test-artifacts/`` at the repository's root; the run's
summary prints their paths.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trio
from conftest import API_KEY

from browser.dashboard_driver import (
    CHROMEDRIVER,
    CHROMIUM,
    SAVED,
    Page,
    profile_dir,
    quit_quietly,
    start_chromium,
)
from browser.sim_plan import DASHBOARD_SETTINGS


def pytest_terminal_summary(terminalreporter):
    if SAVED:
        terminalreporter.write_sep("-", "dashboard screenshots")
        for path in SAVED:
            terminalreporter.write_line(str(path))


@pytest.fixture
def settings_overrides() -> dict:
    return DASHBOARD_SETTINGS


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium for the whole module (starting one costs about a second). Without
    Chromium the tests fail, as the SIP tests do without sipp: never a silent skip."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's chromium and "
                    "chromium-driver (.ci/run does)", pytrace=False)
    profile = profile_dir()
    driver = start_chromium(profile)
    try:
        yield driver
    finally:
        quit_quietly(driver)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def page(browser, gateway, tmp_path) -> AsyncIterator[Page]:
    """The browser on this test's gateway; afterwards, no console error it did not expect."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with httpx.Client(base_url=gateway.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        ui = Page(browser, gateway.base_url, client, downloads)

        def fresh(page: Page) -> None:
            page.driver.get("about:blank")
            page.reset_size()
            page.driver.get_log("browser")  # the previous test's lines, if any
            page.driver.get_log("performance")
            page.allow_downloads()

        await ui.run(fresh)
        yield ui

        def finish(page: Page) -> list[dict]:
            # Leave the gateway's pages first: their event streams would hold its shutdown.
            page.driver.get("about:blank")
            page.reset_size()
            page.driver.get_log("performance")
            return page.console()

        with trio.CancelScope(shield=True), trio.move_on_after(20):
            lines = await ui.run(finish)
            unexpected = [line for line in lines if line["level"] == "SEVERE" and not any(
                re.search(pattern, line["message"]) for pattern in ui.expected_console)]
            assert not unexpected, f"browser console errors: {unexpected}"
