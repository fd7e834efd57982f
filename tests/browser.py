"""A real headless Chromium for browser tests (the portal's, the API reference's), driven
through Playwright's Python package and its own driver against the machine's Chromium
(scripts/install-chromium; no browser build is downloaded).

Use the fixtures from a conftest.py: `from tests.browser import *` is not needed,
name them in the conftest's namespace:

    from tests.browser import browser, browser_page, chromium_executable, screenshots  # noqa: F401

`browser_page` fails its test when any page it visited logged a console error,
threw, had a request fail, or answered a request with an HTTP error; `visit(url)`
also fails right away, naming the page. `screenshots` is the folder screenshots
go in: $DEPTMESH_BROWSER_ARTEFACTS, else `browser-artefacts` under pytest's basetemp;
the run's summary prints where.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    sync_playwright,
)

__all__ = [
    "ARTEFACTS_KEY",
    "BrowserPage",
    "browser",
    "browser_page",
    "chromium_executable",
    "screenshots",
]

ROOT = Path(__file__).resolve().parent.parent
# Without the background-networking flags Chromium reaches for Google's services, whose
# connections a closed network refuses (and logs as errors).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACTS_VARIABLE = "DEPTMESH_BROWSER_ARTEFACTS"
# Where the run's screenshots went, for a conftest's pytest_terminal_summary to print.
ARTEFACTS_KEY = pytest.StashKey[Path]()


@dataclass
class BrowserPage:
    """A Playwright page that records every problem the pages it visits have."""

    page: Page
    screenshots: Path
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text} ({message.location})")

    def _failed(self, request: Request) -> None:
        self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def visit(self, url: str) -> Page:
        """Loads `url` and waits until the network is idle; fails if it had a problem."""
        before = len(self.problems)
        response = self.page.goto(url, wait_until="networkidle")
        assert response is not None, f"{url}: no response"
        assert response.ok, f"{url}: HTTP {response.status}"
        assert self.problems[before:] == [], f"{url}: {self.problems[before:]}"
        return self.page

    def screenshot(self, name: str) -> Path:
        """A full-page screenshot of the current page as `name`.png in the artefacts folder."""
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """scripts/install-chromium's Chromium (a failed install fails the run, saying why)."""
    found = subprocess.run(
        [str(ROOT / "scripts" / "install-chromium")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory, pytestconfig) -> Path:
    """Where screenshots are saved (see the module's docstring)."""
    given = os.environ.get(ARTEFACTS_VARIABLE)
    folder = Path(given) if given else tmp_path_factory.getbasetemp() / "browser-artefacts"
    folder.mkdir(parents=True, exist_ok=True)
    pytestconfig.stash[ARTEFACTS_KEY] = folder
    return folder


# Package-scoped, not session-scoped: while Playwright's sync API is started, its event
# loop is the main thread's, and tests elsewhere that run asyncio.run() would find it.
@pytest.fixture(scope="package")
def browser(chromium_executable, tmp_path_factory) -> Iterator[BrowserContext]:
    """One headless Chromium for the test package that uses it, with a fresh profile
    (user-data dir) of its own; closed when the package's tests end."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium_executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def browser_page(browser, screenshots) -> Iterator[BrowserPage]:
    """A new page of the session's Chromium; the test fails if any page it visited had a
    problem (see the module's docstring)."""
    page = BrowserPage(browser.new_page(), screenshots)
    try:
        yield page
    finally:
        page.page.close()
    assert page.problems == [], page.problems
