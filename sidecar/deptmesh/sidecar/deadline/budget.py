"""The time a call has left: every outbound call has a deadline, and never outlives the
inbound call it serves.

The server chain's deadline stage records when the inbound call must finish;
outbound calls made while handling it get the smaller of their own timeout and
the time left.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

__all__ = ["outbound_timeout", "remaining_seconds", "seconds_left", "set_inbound_deadline"]

# grpc reports "no deadline" as a time remaining of about 2**63 seconds.
_NO_DEADLINE_SECONDS = 1e9

# time.monotonic() by which the inbound call being handled must finish. Set for every
# call by the deadline stage and not reset (see chain/core.py).
_inbound_deadline: ContextVar[float | None] = ContextVar("deptmesh_deadline", default=None)


# Records when (time.monotonic()) the inbound call being handled must finish: the
# context variable's own setter, as the deadline stage calls it on every call.
set_inbound_deadline = _inbound_deadline.set


def seconds_left(time_remaining: float | None) -> float | None:
    """What a servicer context's time_remaining() means: seconds, or None for no deadline."""
    if time_remaining is None or time_remaining > _NO_DEADLINE_SECONDS:
        return None
    return time_remaining


def remaining_seconds() -> float | None:
    """Seconds left for the inbound call being handled; None outside a call or without one."""
    deadline = _inbound_deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def outbound_timeout(requested: float | None, default: float) -> float:
    """The timeout an outbound call gets: its own (or the default), capped by the inbound one."""
    timeout = default if requested is None else requested
    left = remaining_seconds()
    return timeout if left is None else max(0.0, min(timeout, left))
