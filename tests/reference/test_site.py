"""`deptmesh docs build`: the site it writes holds every installed method, with its codes,
callers and cost; the changelog; the search index; valid HTML and no broken link."""

from __future__ import annotations

import html
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from deptmesh.services.company_policy import company_policy
from deptmesh.sidecar.cli.command import main
from deptmesh.sidecar.contracts import Contracts
from deptmesh.sidecar.declared_errors import MESH_ERRORS, declared_errors
from deptmesh.sidecar.reference.catalog import catalog_of
from deptmesh.sidecar.reference.examples import example_requests

ROOT = Path(__file__).resolve().parents[2]
HTML_VALIDATE = ROOT / "node_modules" / ".bin" / "html-validate"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `deptmesh docs build OUT/` writes it, with the company's policy."""
    out = tmp_path_factory.mktemp("reference") / "site"
    assert main(["docs", "build", str(out)]) == 0
    return out


class _Page(HTMLParser):
    """A page's ids and the links (href and src) it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.links.append(value)


def _parsed(page: Path) -> _Page:
    parsed = _Page()
    parsed.feed(page.read_text(encoding="utf-8"))
    return parsed


def _text(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


class TestSite:
    def test_every_method_has_a_page_with_its_codes_callers_and_cost(self, site):
        """Each method of every installed contract has a page naming its path, each status
        code and reason it or the mesh declares, each caller the policy allows, and its
        quota cost."""
        catalog = catalog_of(Contracts.installed(), company_policy(), example_requests())
        installed = {
            method.full_name
            for service in Contracts.installed().services()
            for method in service.methods
        }
        assert {method.full_name for method in catalog.methods()} == installed
        for method in catalog.methods():
            text = _text(site / method.url)
            assert method.path in text
            descriptor = Contracts.installed().service(method.service)
            assert descriptor is not None
            for case in (*declared_errors(descriptor.methods_by_name[method.name]), *MESH_ERRORS):
                assert case.code in text
                assert case.reason in text
                assert case.meaning in text
            for caller in method.callers.allowed:
                assert re.search(rf"\b{re.escape(caller)}\b", text), (method.path, caller)
            assert f"{method.quota_cost} token" in text
            assert method.idempotency in text

    def test_a_method_page_says_who_may_call_it(self, site):
        """Payout, which a method rule keeps to reimbursement, lists reimbursement only."""
        page = site / "deptmesh.finance.v1.PaymentService.Payout.html"
        callers = re.search(r'<ul class="callers">(.*?)</ul>', page.read_text(), re.S)
        assert callers is not None
        assert re.findall(r"<code>([^<]+)</code>", callers[1]) == ["reimbursement"]

    def test_fields_link_their_messages_and_enums(self, site):
        """A request's message field links to its message, nested types and enums too,
        with the enum's values on the package's page."""
        submit = (
            site / "deptmesh.reimbursement.v1.ReimbursementService.SubmitClaim.html"
        ).read_text()
        assert 'href="deptmesh.common.v1.html#Money"' in submit
        package = (site / "deptmesh.reimbursement.v1.html").read_text()
        assert 'href="deptmesh.reimbursement.v1.html#ClaimState"' in package
        assert 'id="ClaimState-CLAIM_STATE_PAID"' in package

    def test_the_changelog_lists_each_published_version(self, site):
        """Version 1 adds the first contracts; what is installed but not yet published is
        listed on top."""
        text = _text(site / "changelog.html")
        assert text.index("Not yet published") < text.index("Version 2") < text.index("Version 1")
        assert re.search(r"added\s*service\s*deptmesh\.hr\.v1\.EmployeeService", text)
        assert re.search(r"added\s*option\s*deptmesh\.common\.v1\.quota_cost", text)

    def test_the_search_index_holds_every_method_and_message(self, site):
        """search-index.js assigns an entry per method, message and enum, each to a page
        of the site; search.html lists them all as plain HTML."""
        script = (site / "search-index.js").read_text()
        entries = json.loads(script[script.index("=") + 1 :].strip().removesuffix(";"))
        names = {entry["name"] for entry in entries}
        catalog = catalog_of(Contracts.installed(), company_policy(), example_requests())
        assert {m.full_name for m in catalog.methods()} <= names
        assert {m.full_name for p in catalog.packages for m in p.messages} <= names
        listed = _text(site / "search.html")
        assert all(name in listed for name in names)

    def test_every_page_is_valid_html(self, site):
        """html-validate's recommended rules find nothing on any page."""
        pages = sorted(str(page) for page in site.glob("*.html"))
        finished = subprocess.run(
            [str(HTML_VALIDATE), *pages], capture_output=True, text=True, check=False, timeout=60
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr

    def test_no_link_is_broken(self, site):
        """Every link of every page leads to a file of the site, and to an id on it."""
        pages = {page.name: _parsed(page) for page in site.glob("*.html")}
        broken = []
        for name, page in pages.items():
            for link in page.links:
                parts = urlsplit(link)
                assert parts.scheme == "", f"{name}: {link} leaves the site"
                assert parts.netloc == "", f"{name}: {link} leaves the site"
                target = unquote(parts.path) or name
                if not (site / target).is_file():
                    broken.append(f"{name}: {link}")
                elif parts.fragment and parts.fragment not in pages[target].ids:
                    broken.append(f"{name}: {link} (no such id)")
        assert broken == []

    def test_every_installed_method_has_an_example(self):
        """examples.toml has an entry for each method, each a valid request of it."""
        catalog = catalog_of(Contracts.installed(), company_policy(), example_requests())
        assert [m.path for m in catalog.methods() if m.example is None] == []


class TestDocsCommand:
    def test_a_policy_file_that_cannot_be_read_exits_2(self, tmp_path, capsys):
        """--policy naming no file: exit 2, saying which file."""
        assert main(["docs", "build", str(tmp_path), "--policy", str(tmp_path / "none.toml")]) == 2
        assert "none.toml" in capsys.readouterr().err
