"""The windows a page may look back over, and the buckets a chart splits one into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = ["DEFAULT_WINDOW", "WINDOWS", "Window", "window_named"]


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    length: timedelta
    # A chart's buckets, whole minutes each (the ledger counts per minute): few, as
    # each costs one QueryUsage.
    buckets: int

    @property
    def seconds(self) -> float:
        return self.length.total_seconds()

    @property
    def step(self) -> timedelta:
        return self.length / self.buckets


WINDOWS = tuple(
    Window(name, timedelta(minutes=minutes), buckets)
    for name, minutes, buckets in (("10m", 10, 5), ("1h", 60, 6), ("6h", 360, 6), ("24h", 1440, 8))
)
DEFAULT_WINDOW = WINDOWS[1]


def window_named(name: str | None) -> Window:
    """The window called `name`; the default one when none is named (ValueError for a
    name that is not one of WINDOWS)."""
    if not name:
        return DEFAULT_WINDOW
    for window in WINDOWS:
        if window.name == name:
            return window
    raise ValueError(f"window {name!r} is not one of {', '.join(w.name for w in WINDOWS)}")
