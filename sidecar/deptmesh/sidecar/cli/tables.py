"""Plain-text tables for the `deptmesh` command's output."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ELLIPSIS", "Row", "shorten", "table"]

Row = tuple[str, ...]

ELLIPSIS = "…"


def table(rows: Sequence[Row]) -> str:
    """Rows as left-aligned columns; the first row is the header."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters, its end replaced by an ellipsis when cut."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""
