"""The portal as a person uses it, in a real headless Chromium: every page loads with no
console error and no failed request, the call graph shows the demo's departments and
the edges its traffic made, a trace opens as a waterfall, the refused payment is
listed with its reason, and screenshots of the main pages are saved."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.portal.conftest import DEMO_EDGES

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
# The screenshot the README shows; `make screenshots` sets this to refresh it.
README_SCREENSHOT = ROOT / "docs" / "images" / "call-graph.png"
REFRESH_VARIABLE = "DEPTMESH_REFRESH_SCREENSHOTS"
MAIN_PAGES = {
    "catalog": "/",
    "call-graph": "/graph",
    "usage": "/usage?caller=reimbursement",
    "traces": "/traces",
    "refusals": "/refusals",
    "alerts": "/alerts",
    "reference": "/reference/",
}


class TestEveryPage:
    def test_every_page_loads_cleanly_and_is_captured(self, portal, browser_page):
        """Each main page answers 200 with no console error and no failed request, shows its
        heading, and leaves a screenshot."""
        for name, path in MAIN_PAGES.items():
            page = browser_page.visit(portal.url + path)
            assert page.locator("h1").first.inner_text().strip()
            assert browser_page.screenshot(name).stat().st_size > 0

    def test_the_navigation_reaches_every_page(self, portal, browser_page):
        """The header's links lead to every page, each marked current when it is shown."""
        page = browser_page.visit(portal.url + "/")
        labels = page.locator("header nav a").all_inner_texts()
        assert labels == [
            "Catalog",
            "Call graph",
            "Usage",
            "Traces",
            "Refusals",
            "Alerts",
            "API reference",
        ]
        page.get_by_role("link", name="Call graph").click()
        page.wait_for_load_state("networkidle")
        assert page.locator('nav a[aria-current="page"]').inner_text() == "Call graph"
        assert browser_page.problems == []


class TestCatalog:
    def test_it_lists_each_department_with_health_and_contract(self, portal, browser_page):
        """The catalog shows hr, finance (two instances, both passing), reimbursement and the
        ledger, each with contract v1."""
        page = browser_page.visit(portal.url + "/")
        finance = page.locator('tr[data-service="finance"]')
        assert finance.count() == 2
        assert "2 of 2" in finance.first.inner_text()
        for name in ("hr", "reimbursement", "metering"):
            row = page.locator(f'tr[data-service="{name}"]').first
            assert "v1" in row.inner_text()
            assert "passing" in row.inner_text()


class TestCallGraph:
    def test_it_shows_the_departments_and_the_demos_edges(self, portal, browser_page):
        """The drawn graph has a node for hr, finance and reimbursement and an arrow for each
        caller and callee the demo's traffic made, each with its rate, errors and p95."""
        page = browser_page.visit(portal.url + "/graph")
        graph = page.locator("svg.call-graph")
        assert graph.is_visible()
        nodes = set(graph.locator("g.node").evaluate_all("ns => ns.map(n => n.dataset.department)"))
        assert {"hr", "finance", "reimbursement"} <= nodes
        edges = {
            (caller, callee)
            for caller, callee in graph.locator("g.edge").evaluate_all(
                "es => es.map(e => [e.dataset.caller, e.dataset.callee])"
            )
        }
        assert edges >= DEMO_EDGES
        label = graph.locator('g.edge[data-caller="reimbursement"][data-callee="hr"] text')
        text = label.text_content() or ""
        assert "/min" in text
        assert "err" in text
        assert "p95" in text

    def test_the_refused_payment_counts_as_failed(self, portal, browser_page):
        """hr's one call to finance was refused: its edge's error ratio is 100%."""
        page = browser_page.visit(portal.url + "/graph")
        row = page.locator('table.edges tr[data-caller="hr"][data-callee="finance"]')
        assert "100%" in row.inner_text()

    def test_the_readme_screenshot_is_this_page(self, portal, browser_page):
        """The graph page's screenshot is saved; with $DEPTMESH_REFRESH_SCREENSHOTS set
        (`make screenshots`) it replaces the README's docs/images/call-graph.png."""
        page = browser_page.visit(portal.url + "/graph?window=10m")
        page.set_viewport_size({"width": 1100, "height": 800})
        taken = browser_page.screenshot("call-graph-readme")
        if os.environ.get(REFRESH_VARIABLE):
            README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(taken, README_SCREENSHOT)
        assert README_SCREENSHOT.is_file(), "run `make screenshots` to take it"


class TestUsage:
    def test_it_charts_a_callers_usage_headroom_and_statement(self, portal, browser_page):
        """For reimbursement: its calls over time and its quota headroom as charts, and its
        month-to-date statement from the ledger, with finance on it."""
        page = browser_page.visit(portal.url + "/usage?caller=reimbursement&window=10m")
        assert page.locator("svg.chart").count() == 2
        assert page.locator("svg.chart .bucket rect.ok").count() == 5
        statement = page.locator("table.statement")
        assert "month to date" in statement.locator("caption").inner_text()
        callees = set(statement.locator("tbody tr td:first-child").all_inner_texts())
        assert "finance" in callees


class TestTraces:
    def test_a_recent_trace_opens_as_a_waterfall(self, portal, browser_page):
        """The claim's trace is among the recent ones; opened, it is drawn as a waterfall
        with a bar per span, reimbursement's and hr's among them."""
        page = browser_page.visit(portal.url + "/traces")
        page.locator("table.traces a").first.wait_for()
        trace = page.locator('table.traces tr:has-text("demo: one expense claim") a').first
        trace.click()
        page.wait_for_load_state("networkidle")
        bars = page.locator("svg.waterfall g.span")
        assert bars.count() >= 5
        services = set(page.locator("table.spans tbody tr td:nth-child(2)").all_inner_texts())
        assert {"reimbursement", "hr", "finance"} <= services
        assert browser_page.problems == []

    def test_an_unknown_trace_is_not_found(self, portal):
        """A trace id the store does not hold answers 404, saying so."""
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{portal.url}/traces/{'0' * 32}", timeout=10)
        with raised.value as answer:
            assert answer.code == 404
            assert "holds no trace" in answer.read().decode()


class TestRefusals:
    def test_the_refused_payment_is_listed_with_its_reason(self, portal, browser_page):
        """hr's attempt to pay is listed as denied by finance, with the rule that refused it
        and a link to its trace."""
        page = browser_page.visit(portal.url + "/refusals")
        row = page.locator('table.refusals tr:has-text("PaymentService/Payout")').first
        text = row.inner_text()
        assert "denied" in text
        assert "hr" in text
        assert "finance" in text
        assert row.locator("a").get_attribute("href") == f"/traces/{portal.refused_trace}"


class TestAbsentSources:
    def test_the_alerts_page_says_monitoring_is_absent(self, portal, browser_page):
        """This mesh runs no Alertmanager: the alerts page says so, in a notice, and loads."""
        page = browser_page.visit(portal.url + "/alerts")
        assert "no monitoring" in page.locator(".notice").inner_text()


class TestReadOnlyOnLocalhost:
    def test_it_listens_on_localhost(self, portal):
        """Started with no --listen, the portal serves on 127.0.0.1 only."""
        assert portal.address.startswith("127.0.0.1:")

    def test_it_refuses_writes(self, portal):
        """A POST is answered 405: the portal changes nothing."""
        request = urllib.request.Request(f"{portal.url}/", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        with raised.value as answer:
            assert answer.code == 405

    def test_every_asset_is_its_own(self, portal, browser_page):
        """Every request a page makes goes to the portal itself: nothing from another host."""
        requested: list[str] = []
        browser_page.page.on("request", lambda request: requested.append(request.url))
        for path in MAIN_PAGES.values():
            browser_page.visit(portal.url + path)
        assert requested
        assert [url for url in requested if not url.startswith(portal.url)] == []
