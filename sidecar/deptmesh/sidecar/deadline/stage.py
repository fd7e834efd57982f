"""The deadline stage of the server chain: when the call being handled must finish.

It publishes the inbound call's deadline for the outbound calls made while
handling it (deadline/budget.py), and refuses a call whose deadline has already
passed with DEADLINE_EXCEEDED before anything is decided or the handler runs:
one that arrived too late, or whose process was frozen (SIGSTOP, a long pause)
between receiving it and handling it. Its caller gave up already; doing the
work anyway (a payout, say) would be work nobody waits for, done late.
"""

from __future__ import annotations

import time

import grpc

from deptmesh.sidecar.chain.core import Call, Gate
from deptmesh.sidecar.deadline.budget import seconds_left, set_inbound_deadline
from deptmesh.sidecar.errors import DeadlineExceeded

__all__ = ["DeadlineStage"]


class DeadlineStage(Gate):
    """Publishes the inbound call's deadline; refuses the call if it has passed."""

    def __init__(self) -> None:
        self._expired = DeadlineExceeded(
            "the call's deadline passed before it was handled: nothing was done",
            reason="DEADLINE_PASSED",
        ).to_status()

    def start(self, call: Call) -> grpc.Status | None:
        left = seconds_left(call.context.time_remaining())
        if left is None:
            set_inbound_deadline(None)
            return None
        set_inbound_deadline(time.monotonic() + left)
        return None if left > 0 else self._expired
