"""Writes the reference site into a folder (a placeholder until the builder lands)."""

from __future__ import annotations

from pathlib import Path

from deptmesh.sidecar.policy_document import PolicyDocument

__all__ = ["build_site"]


def build_site(out: Path, *, policy: PolicyDocument | None = None) -> Path:
    """Writes the reference into `out` (created if missing) and returns its index page."""
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(
        "<!doctype html><html lang=en><title>deptmesh API reference</title>"
        "<h1>deptmesh API reference</h1></html>\n",
        encoding="utf-8",
    )
    return index
