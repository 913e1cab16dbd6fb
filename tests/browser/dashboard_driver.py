"""Headless Chromium driven through Selenium, and the dashboard's pages as tests use them.

Selenium is synchronous and the gateway under test runs in the test's own trio event loop
(the conftest's ``gateway`` fixture), so a browser step never runs on that loop: each test
hands its browser steps to a worker thread (:meth:`Page.run`, ``trio.to_thread``) while the
loop goes on serving the browser's requests. Every wait is a ``WebDriverWait`` with a
timeout, and the test as a whole is bounded by the conftest's time limit.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 15
DESKTOP = (1280, 900)
PHONE = (390, 844)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Every screenshot this run saved, printed at the end of the run (conftest).
SAVED: list[Path] = []

T = TypeVar("T")


def start_chromium(profile_dir: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run", "--disable-extensions",
                     "--disable-background-networking", "--disable-sync",
                     "--disable-component-update", "--disable-default-apps",
                     "--disable-features=Translate,MediaRouter,OptimizationHints",
                     f"--user-data-dir={profile_dir}",
                     f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option("prefs", {"download.prompt_for_download": False})
    # An explicit driver path: Selenium Manager never goes looking for (or downloading) one.
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    return driver


class Page:
    """The browser on one gateway: helpers for a test's steps (run them with :meth:`run`)."""

    def __init__(self, driver: webdriver.Chrome, base_url: str, api: httpx.Client,
                 downloads: Path) -> None:
        self.driver = driver
        self.base_url = base_url
        self.api = api  # the same gateway, as a plain client: what the API says
        self.downloads = downloads
        # Browser log lines a test expects (regular expressions): e.g. a refused key's 401.
        self.expected_console: list[str] = []
        self.console_lines: list[dict] = []

    async def run(self, steps: Callable[..., T], *args: Any) -> T:
        """``steps(self, *args)`` in a worker thread, the event loop serving meanwhile."""
        return await trio.to_thread.run_sync(functools.partial(steps, self, *args),
                                             abandon_on_cancel=True)

    # Navigation and waiting

    def open(self, fragment: str = "") -> None:
        self.driver.get(f"{self.base_url}/{fragment}")

    def wait(self, check: Callable[[], Any], message: str = "",
             timeout: float = WAIT_SECONDS) -> Any:
        def attempt(_driver: Any) -> Any:
            try:
                return check()
            except (NoSuchElementException, StaleElementReferenceException):
                return False

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(attempt, message)

    def css(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def shown(self, selector: str) -> WebElement:
        return self.wait(lambda: (el := self.css(selector)).is_displayed() and el,
                         f"{selector} is not shown")

    def text(self, selector: str) -> str:
        return self.css(selector).text

    def button(self, name: str, within: WebElement | None = None) -> WebElement:
        """The button whose accessible text (or aria-label) is ``name``."""
        scope: Any = within or self.driver
        return scope.find_element(
            By.XPATH, f".//button[normalize-space()={_xpath_text(name)} or "
                      f"@aria-label={_xpath_text(name)}]")

    def labelled(self, label: str) -> WebElement:
        """The control a <label> with this text is for (how a person finds a field)."""
        found = self.driver.find_element(
            By.XPATH, f"//label[normalize-space()={_xpath_text(label)}]")
        return self.driver.find_element(By.ID, found.get_attribute("for"))

    def fill(self, label: str, value: str) -> None:
        control = self.labelled(label)
        control.clear()
        control.send_keys(value)

    def choose(self, label: str, value: str) -> None:
        Select(self.labelled(label)).select_by_value(value)

    def accept_confirm(self) -> None:
        WebDriverWait(self.driver, WAIT_SECONDS).until(expected_conditions.alert_is_present())
        self.driver.switch_to.alert.accept()

    def status_message(self) -> str:
        return self.css("#status").text

    def alert_message(self) -> str:
        return self.css("#alert").text

    def wait_message(self, pattern: str, region: str = "#status") -> str:
        return self.wait(lambda: re.search(pattern, self.text(region)) and self.text(region),
                         f"no message matching {pattern!r} in {region}")

    # The dashboard's steps

    def sign_in(self, key: str, *, remember: bool = False) -> None:
        field = self.shown("#api-key")
        field.clear()
        field.send_keys(key)
        box = self.css("#remember-key")
        if box.is_selected() != remember:
            box.click()
        self.button("Sign in").click()

    def signed_in(self) -> bool:
        return self.css("#nav").is_displayed()

    def table_rows(self, name: str) -> list[list[str]]:
        """The rows of the table ``data-table=name``, as the cells' texts."""
        # One script for the whole table: a WebDriver call per cell costs seconds.
        return self.driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map((row) =>"
            " [...row.querySelectorAll('th, td')].map((cell) => cell.innerText.trim()));",
            f'table[data-table="{name}"] tbody tr')

    def page_info(self, name: str) -> str:
        return self.text(f'[data-page-info="{name}"]')

    def table_settled(self, name: str) -> bool:
        return self.css(f'table[data-table="{name}"]').get_attribute("aria-busy") is None

    def count(self, selector: str) -> int:
        text = self.text(selector).replace(",", "").replace("\u202f", "").strip()
        return int(text) if text.isdigit() else -1

    # What the browser did

    def network_requests(self) -> list[dict]:
        """Every request the browser sent since the last call (the performance log)."""
        requests = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requests.append(message["params"])
        return requests

    def console(self) -> list[dict]:
        """Every browser console line of this test so far (Chromium hands each out once)."""
        self.console_lines += self.driver.get_log("browser")
        return self.console_lines

    def storage(self) -> dict[str, Any]:
        return self.driver.execute_script(
            "return {local: Object.assign({}, localStorage), session: Object.assign({}, "
            "sessionStorage), cookie: document.cookie};")

    def horizontal_overflow(self) -> int:
        """How many CSS pixels the page is wider than the viewport (0: none)."""
        return self.driver.execute_script(
            "const d = document.documentElement;"
            "return Math.max(d.scrollWidth, document.body.scrollWidth) - d.clientWidth;")

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if not full_page:
            self.driver.save_screenshot(str(path))
            SAVED.append(path)
            return path
        # The whole page, not only the viewport: the campaign page is long.
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        width, _ = self.window_size()
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": min(int(height), 6000), "deviceScaleFactor": 1,
            "mobile": width < 500})
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        SAVED.append(path)
        return path

    def window_size(self) -> tuple[int, int]:
        size = self.driver.execute_script("return [window.innerWidth, window.innerHeight]")
        return int(size[0]), int(size[1])

    def resize(self, size: tuple[int, int]) -> None:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": size[0], "height": size[1], "deviceScaleFactor": 1,
            "mobile": size[0] < 500})

    def reset_size(self) -> None:
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def allow_downloads(self) -> None:
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(self.downloads)})

    def downloaded(self, name: str) -> Path:
        """The file ``name`` once Chromium has finished writing it."""
        path = self.downloads / name
        self.wait(lambda: path.exists() and not (self.downloads / f"{name}.crdownload").exists(),
                  f"{name} was not downloaded")
        return path


def _xpath_text(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    parts = text.split("'")
    return "concat(" + ", \"'\", ".join(f"'{p}'" for p in parts) + ")"


def profile_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gateway-chromium-"))


def quit_quietly(driver: webdriver.Chrome) -> None:
    try:
        driver.quit()
    except WebDriverException:
        pass
