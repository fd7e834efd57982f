"""Deadlines: every outbound call has one, and never outlives the call it serves.

The server chain records when the inbound call must finish; outbound calls made
while handling it get the smaller of their own timeout and the time left.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from sidecar._chain import Call, Gate

__all__ = ["remaining_seconds"]

# grpc reports "no deadline" as a time remaining of about 2**63 seconds.
_NO_DEADLINE_SECONDS = 1e9

# time.monotonic() by which the inbound call being handled must finish.
_inbound_deadline: ContextVar[float | None] = ContextVar("deptmesh_deadline", default=None)


def remaining_seconds() -> float | None:
    """Seconds left for the inbound call being handled; None outside a call or without one."""
    deadline = _inbound_deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def outbound_timeout(requested: float | None, default: float) -> float:
    """The timeout an outbound call gets: its own (or the default), capped by the inbound one."""
    timeout = default if requested is None else requested
    left = remaining_seconds()
    return timeout if left is None else max(0.0, min(timeout, left))


class InboundDeadline(Gate):
    """The server chain stage that records when the call being handled must finish."""

    def start(self, call: Call) -> None:
        left = call.context.time_remaining()
        deadline = None if left is None or left > _NO_DEADLINE_SECONDS else time.monotonic() + left
        _inbound_deadline.set(deadline)
