"""Plain-text tables for the `deptmesh` command's output."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["Row", "table"]

Row = tuple[str, ...]


def table(rows: Sequence[Row]) -> str:
    """Rows as left-aligned columns; the first row is the header."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
