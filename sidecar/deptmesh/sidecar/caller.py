"""Who is calling: the verified identity of the peer of the current call."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Caller", "current_caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """A calling service as its certificate names it."""

    service: str
    spiffe_id: str
    department: str


# The caller on a plaintext server, which has no certificate to verify. Only
# development servers run without TLS.
ANONYMOUS = Caller(service="anonymous", spiffe_id="", department="")

# Set by the server chain's identity stage for the duration of each call.
CURRENT_CALLER: ContextVar[Caller | None] = ContextVar("deptmesh_caller", default=None)


def current_caller() -> Caller:
    """The caller of the call being handled; raises outside a call."""
    caller = CURRENT_CALLER.get()
    if caller is None:
        raise RuntimeError("current_caller() is only available while handling a call")
    return caller
