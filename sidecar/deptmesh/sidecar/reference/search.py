"""The search index: one entry per method, message and enum, with where it is documented."""

from __future__ import annotations

from deptmesh.sidecar.reference.catalog import Catalog

__all__ = ["search_entries"]


def search_entries(catalog: Catalog) -> list[dict[str, str]]:
    """Entries sorted by name: {name, kind, url, summary}; `name` is the full name."""
    entries = [
        {"name": m.full_name, "kind": "method", "url": m.url, "summary": m.summary}
        for m in catalog.methods()
    ]
    for package in catalog.packages:
        entries += [
            {
                "name": m.full_name,
                "kind": "message",
                "url": m.url,
                "summary": m.comment.split("\n\n")[0].replace("\n", " "),
            }
            for m in package.messages
        ]
        entries += [
            {
                "name": e.full_name,
                "kind": "enum",
                "url": e.url,
                "summary": e.comment.split("\n\n")[0].replace("\n", " "),
            }
            for e in package.enums
        ]
    return sorted(entries, key=lambda entry: entry["name"])
