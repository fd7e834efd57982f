"""Charts drawn as SVG on the server: calls over time (each bar split into the calls
that ended OK and those that did not) and quota headroom (a bar per bucket a caller
draws on, filled to the share of its tier's rate it used)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

__all__ = ["Bucket", "HeadroomBar", "draw_headroom", "draw_usage_over_time"]

_WIDTH, _PLOT_HEIGHT, _MARGIN = 720, 200, 44


@dataclass(frozen=True, slots=True)
class Bucket:
    label: str  # when the bucket starts, as shown under it
    ok: int
    failed: int


@dataclass(frozen=True, slots=True)
class HeadroomBar:
    label: str  # callee and bucket
    tier: str
    rate: float  # the tier's, units a second
    used: float  # recent units a second

    @property
    def share(self) -> float:
        return self.used / self.rate if self.rate else 0.0


def _svg(height: int, title: str, body: str) -> Markup:
    return Markup(  # noqa: S704 -- every text in the body went through escape()
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {height}" role="img"'
        f' xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>'
    )


def draw_usage_over_time(title: str, buckets: Sequence[Bucket]) -> Markup:
    """Stacked bars, one per bucket, with the axis' top value and each bucket's start."""
    top = max([bucket.ok + bucket.failed for bucket in buckets] + [1])
    plot_width = _WIDTH - 2 * _MARGIN
    step = plot_width / max(1, len(buckets))
    parts = [
        f'<line class="axis" x1="{_MARGIN}" y1="{_PLOT_HEIGHT + 10}" x2="{_WIDTH - _MARGIN}"'
        f' y2="{_PLOT_HEIGHT + 10}"/>',
        f'<text class="axis-label" x="{_MARGIN - 6}" y="18" text-anchor="end">{top}</text>',
        f'<text class="axis-label" x="{_MARGIN - 6}" y="{_PLOT_HEIGHT + 10}"'
        ' text-anchor="end">0</text>',
    ]
    for index, bucket in enumerate(buckets):
        x = _MARGIN + index * step + step * 0.15
        width = step * 0.7
        ok_height = _PLOT_HEIGHT * bucket.ok / top
        failed_height = _PLOT_HEIGHT * bucket.failed / top
        base = _PLOT_HEIGHT + 10
        tip = escape(f"{bucket.label}: {bucket.ok} ok, {bucket.failed} failed")
        parts.append(
            f'<g class="bucket"><title>{tip}</title>'
            f'<rect class="ok" x="{x:.1f}" y="{base - ok_height:.1f}" width="{width:.1f}"'
            f' height="{ok_height:.1f}"/>'
            f'<rect class="failed" x="{x:.1f}" y="{base - ok_height - failed_height:.1f}"'
            f' width="{width:.1f}" height="{failed_height:.1f}"/></g>'
        )
        if index % max(1, len(buckets) // 6) == 0:
            parts.append(
                f'<text class="axis-label" x="{x + width / 2:.1f}" y="{base + 18}"'
                f' text-anchor="middle">{escape(bucket.label)}</text>'
            )
    return _svg(_PLOT_HEIGHT + 36, title, "".join(parts))


def draw_headroom(title: str, bars: Sequence[HeadroomBar]) -> Markup:
    """One horizontal bar per bucket: the share of the tier's rate used recently."""
    row, label_width = 34, 300
    parts = []
    for index, bar in enumerate(bars):
        y = 10 + index * row
        full = _WIDTH - label_width - 70
        used = full * min(1.0, bar.share)
        level = "ok" if bar.share < 0.5 else "warn" if bar.share < 0.8 else "bad"
        text = escape(f"{bar.label} ({bar.tier}, {bar.rate:g}/s)")
        parts.append(
            f'<g class="headroom {level}"><text class="bar-label" x="0" y="{y + 16}">{text}</text>'
            f'<rect class="capacity" x="{label_width}" y="{y}" width="{full}" height="20"/>'
            f'<rect class="used" x="{label_width}" y="{y}" width="{used:.1f}" height="20"/>'
            f'<text class="bar-value" x="{label_width + full + 8}" y="{y + 16}">'
            f"{bar.share:.0%}</text></g>"
        )
    return _svg(20 + row * max(1, len(bars)), title, "".join(parts))
