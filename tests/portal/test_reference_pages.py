"""The API reference as a person reads it, in a real headless Chromium: through the portal,
a method's page lists its status codes with their reasons and who may call it, and search
finds a method and leads to its page; from files on disk, search works with no server."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from deptmesh.services.company_policy import company_policy
from deptmesh.sidecar.reference import build_site

pytestmark = pytest.mark.timeout(120)

RESERVE_FUNDS = "deptmesh.finance.v1.BudgetService.ReserveFunds"


def _error_rows(page: Page) -> list[tuple[str, str]]:
    """(status code, reason) of each row of the page's first error table: the method's own."""
    rows = page.locator("table.errors").first.locator("tbody tr")
    return [
        (row.locator("td").nth(0).inner_text().strip(), row.locator("td").nth(1).inner_text())
        for row in rows.all()
    ]


def _search(page: Page, query: str) -> list[str]:
    """Types `query` into the search box and returns the names of what it lists."""
    page.locator("#site-search").fill(query)
    page.wait_for_function(
        "query => document.getElementById('search-status').textContent.includes(query)",
        arg=query,
    )
    return page.locator("#search-results li code").all_inner_texts()


@pytest.fixture(scope="module")
def site_on_disk(tmp_path_factory) -> Path:
    """The reference built into a folder, opened as files (no server)."""
    return build_site(tmp_path_factory.mktemp("reference"), policy=company_policy())


class TestMethodPage:
    def test_it_lists_its_codes_and_reasons(self, portal, browser_page):
        """ReserveFunds' page shows each status code it declares with its reason, and what the
        mesh may answer on any call."""
        page = browser_page.visit(f"{portal.url}/reference/{RESERVE_FUNDS}.html")
        rows = _error_rows(page)
        assert ("FAILED_PRECONDITION", "INSUFFICIENT_FUNDS") in rows
        assert ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED") in rows
        assert ("INVALID_ARGUMENT", "none") in rows
        mesh = page.locator("table.errors").nth(1).inner_text()
        assert "PERMISSION_DENIED" in mesh
        assert "QUOTA_EXCEEDED" in mesh
        browser_page.screenshot("reference-method")

    def test_it_says_who_may_call_it(self, portal, browser_page):
        """The company policy lets only reimbursement reserve funds, and the page says so."""
        page = browser_page.visit(f"{portal.url}/reference/{RESERVE_FUNDS}.html")
        assert page.locator("ul.callers li").all_inner_texts() == ["reimbursement"]


class TestSearch:
    def test_it_finds_a_method_and_leads_to_its_page(self, portal, browser_page):
        """Searching for "reserve" lists ReserveFunds; following it opens the method's page."""
        page = browser_page.visit(f"{portal.url}/reference/search.html")
        found = _search(page, "reserve")
        assert RESERVE_FUNDS in found
        assert "deptmesh.hr.v1.EmployeeService.GetEmployee" not in found
        page.get_by_role("link", name=RESERVE_FUNDS).click()
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(f"/reference/{RESERVE_FUNDS}.html")
        assert page.locator("h1").inner_text().strip().endswith("ReserveFunds")
        assert browser_page.problems == []

    def test_it_works_from_files_on_disk(self, site_on_disk, browser_page):
        """Opened as a file, with no server, the search page narrows its list as one types."""
        page = browser_page.visit((site_on_disk.parent / "search.html").as_uri())
        assert _search(page, "ApproveClaim") == [
            "deptmesh.reimbursement.v1.ApproveClaimRequest",
            "deptmesh.reimbursement.v1.ApproveClaimResponse",
            "deptmesh.reimbursement.v1.ReimbursementService.ApproveClaim",
        ]
        assert browser_page.problems == []
