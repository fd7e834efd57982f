"""What the call being handled is about, recorded on its span."""

from __future__ import annotations

from opentelemetry import trace

__all__ = ["tag_current_call"]


def tag_current_call(name: str, value: str) -> None:
    """Records what the call being handled is about (for example the claim) on its span,
    so on-call can find the trace by it (`deptmesh trace --claim`)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(name, value)
