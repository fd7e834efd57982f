"""Writes the reference site into a folder: plain files that work from disk.

Every page is rendered from the catalog (catalog.py) with the Jinja2 templates
shipped beside this module; the style sheet and the search script are copied
as they are. Search needs no server: search-index.js assigns the index to a
global (a script file loads from file://, where fetching JSON does not), and
search.html lists every entry as plain HTML, which the script filters.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path

import jinja2

from deptmesh.sidecar.contracts import Contracts
from deptmesh.sidecar.policy_document import PolicyDocument
from deptmesh.sidecar.reference.catalog import catalog_of
from deptmesh.sidecar.reference.changelog import changelog
from deptmesh.sidecar.reference.examples import ANY_CALLER, ExampleRequest, example_requests
from deptmesh.sidecar.reference.published import installed_image, published_images
from deptmesh.sidecar.reference.search import search_entries

__all__ = ["build_site"]

_STATIC = ("style.css", "search.js")
_EMPTY_POLICY = PolicyDocument(departments={}, intentions=())


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("deptmesh.sidecar.reference", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.globals["ANY_CALLER"] = ANY_CALLER
    environment.filters["paragraphs"] = _paragraphs
    return environment


def _paragraphs(comment: str) -> list[tuple[str, str]]:
    """A comment as ("p" or "pre", text) blocks: a block whose lines are indented (a
    diagram, a list of codes) keeps its layout."""
    blocks = []
    for block in comment.split("\n\n"):
        lines = block.splitlines()
        indented = len(lines) > 1 and any(line.startswith("  ") for line in lines)
        blocks.append(("pre", block) if indented else ("p", " ".join(lines)))
    return [b for b in blocks if b[1].strip()]


def build_site(
    out: Path,
    *,
    policy: PolicyDocument | None = None,
    examples: Mapping[str, ExampleRequest] | None = None,
    contracts: Contracts | None = None,
) -> Path:
    """Writes the reference into `out` (created if missing) and returns its index page.

    `policy` says who may call each method (none given: no one); `examples` the
    example requests (default: the shipped examples.toml); `contracts` what is
    documented (default: every installed contract)."""
    contracts = Contracts.installed() if contracts is None else contracts
    catalog = catalog_of(
        contracts,
        _EMPTY_POLICY if policy is None else policy,
        example_requests() if examples is None else examples,
    )
    releases = changelog(published_images(), installed_image(contracts))
    environment = _environment()
    out.mkdir(parents=True, exist_ok=True)

    def write(name: str, template: str, **context: object) -> Path:
        page = out / name
        page.write_text(
            environment.get_template(template).render(catalog=catalog, **context),
            encoding="utf-8",
        )
        return page

    index = write("index.html", "index.html", title="deptmesh API reference")
    for package in catalog.packages:
        write(package.url, "package.html", title=package.name, package=package)
    for method in catalog.methods():
        write(
            method.url,
            "method.html",
            title=f"{method.service_name}.{method.name} ({method.department})",
            method=method,
        )
    write("changelog.html", "changelog.html", title="Changelog", releases=releases)
    entries = search_entries(catalog)
    write("search.html", "search.html", title="Search", entries=entries)
    (out / "search-index.js").write_text(
        "// The search index (search.js reads it): a script, so that it loads from file://.\n"
        f"window.DEPTMESH_SEARCH_INDEX = {json.dumps(entries, indent=1)};\n",
        encoding="utf-8",
    )
    static = files("deptmesh.sidecar.reference").joinpath("static")
    for name in _STATIC:
        with static.joinpath(name).open("rb") as source, (out / name).open("wb") as target:
            shutil.copyfileobj(source, target)
    return index
