"""`deptmesh docs build` from the wheel: the templates, the style sheet, the search script,
the example requests and the published contracts ship with it, and the site is built
outside a clone."""

from __future__ import annotations


class TestDocsFromTheWheel:
    def test_the_wheel_ships_what_the_reference_needs(self, installation):
        """Templates, static files, examples.toml and each published image sit in the
        reference's package."""
        folder = installation.site_packages / "deptmesh" / "sidecar" / "reference"
        for name in ("templates/method.html", "static/style.css", "static/search.js"):
            assert (folder / name).is_file(), name
        assert (folder / "examples.toml").is_file()
        assert (folder / "published" / "1.binpb").is_file()

    def test_docs_build_writes_the_site(self, installation, tmp_path):
        """Every page, the changelog with its published versions, and the search index."""
        out = tmp_path / "site"
        finished = installation.venv.run("deptmesh", "docs", "build", str(out))
        assert finished.returncode == 0, finished.stderr
        assert str(out / "index.html") in finished.stdout
        method = out / "deptmesh.hr.v1.EmployeeService.GetEmployee.html"
        assert "Required. The employee to return." in method.read_text()
        assert "Version 1" in (out / "changelog.html").read_text()
        for name in ("style.css", "search.js", "search-index.js", "search.html"):
            assert (out / name).is_file(), name
