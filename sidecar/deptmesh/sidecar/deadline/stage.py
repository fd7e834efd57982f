"""The deadline stage of the server chain: records when the call being handled must finish."""

from __future__ import annotations

import time

from deptmesh.sidecar.chain.core import Call, Gate
from deptmesh.sidecar.deadline.budget import set_inbound_deadline

__all__ = ["DeadlineStage"]

# grpc reports "no deadline" as a time remaining of about 2**63 seconds.
_NO_DEADLINE_SECONDS = 1e9


class DeadlineStage(Gate):
    """Publishes the inbound call's deadline for the outbound calls made while handling it."""

    def start(self, call: Call) -> None:
        left = call.context.time_remaining()
        deadline = None if left is None or left > _NO_DEADLINE_SECONDS else time.monotonic() + left
        set_inbound_deadline(deadline)
