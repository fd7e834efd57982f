"""The server chain's core, shared by the sync and the asyncio server.

A call passes through a fixed list of stages (the order is declared in
server/stages.py). A stage may refuse a call when it starts, by returning the status
to end it with, and is told when a call it let through has finished. The sync
and asyncio adapters (_sync.py, _aio.py) run the stages around the
handler; the stages themselves never await and never wrap the handler, so one
implementation serves both kinds of server.

Stages publish per-call values (the caller, the inbound deadline) in context
variables and do not reset them: grpc.aio runs every call in a fresh context,
and a sync worker thread runs one call at a time and every call sets every
variable before its handler runs.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message
from opentelemetry.trace import Span

__all__ = [
    "Call",
    "CallContext",
    "Chain",
    "Gate",
    "QuotaNote",
    "RpcMethod",
    "Stage",
    "Status",
    "with_trailing",
]

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """The method a call dispatched to, as grpc names it: `/pkg.Service/Method`."""

    path: str
    service: str
    name: str
    request_streaming: bool
    response_streaming: bool

    @classmethod
    def from_path(cls, path: str, handler: grpc.RpcMethodHandler[Any, Any]) -> RpcMethod:
        service, _, name = path.lstrip("/").partition("/")
        return cls(path, service, name, handler.request_streaming, handler.response_streaming)


class CallContext(Protocol):
    """What stages use of a call's grpc.ServicerContext or grpc.aio.ServicerContext: both
    offer these with the same meaning. (Their type stubs disagree on the details: grpc
    returns the auth context as property -> list of values, the metadata as (key, value)
    pairs.)"""

    def auth_context(self) -> Mapping[str, Any]: ...

    def time_remaining(self) -> float | None: ...

    def invocation_metadata(self) -> Any: ...

    def peer(self) -> str: ...

    def code(self) -> Any: ...

    def set_trailing_metadata(self, trailing_metadata: Any) -> None: ...


class QuotaNote:
    """What the quota stage decided for a call, for the stages that report on it."""

    __slots__ = ("caller", "shadow_throttled", "throttled", "tier")

    def __init__(self, caller: str, tier: str, *, throttled: bool, shadow_throttled: bool) -> None:
        self.caller = caller
        self.tier = tier
        self.throttled = throttled  # refused by the caller's quota
        self.shadow_throttled = shadow_throttled  # would have been: the tier is in shadow mode


class Call:
    """One inbound call as the stages see it: what was called, by what context, how it ended."""

    __slots__ = (
        "code",
        "context",
        "entered",
        "method",
        "quota",
        "refusal",
        "request",
        "response",
        "span",
        "started_ns",
        "trailing",
    )

    def __init__(self, method: RpcMethod, context: CallContext, request: Message | None) -> None:
        self.method = method
        self.context = context
        self.request = request  # None for a client stream, or bytes that did not parse
        self.response: Message | None = None  # once sent; None for a stream
        self.code = grpc.StatusCode.OK
        self.started_ns = time.perf_counter_ns()
        self.entered = 0  # how many stages let the call through
        # Trailing metadata stages add (for example the caller's remaining
        # quota); the adapters send it with every response, errors included.
        self.trailing: Metadata = ()
        # What the quota stage decided, when a quota applies.
        self.quota: QuotaNote | None = None
        # The status a stage refused the call with, if one did.
        self.refusal: grpc.Status | None = None
        # The call's server span, when the chain traces.
        self.span: Span | None = None


class Status(
    collections.namedtuple("Status", ("code", "details", "trailing_metadata")), grpc.Status
):
    """A grpc.Status to end a call with (grpc declares the interface, not a class)."""


def with_trailing(status: grpc.Status, call: Call) -> grpc.Status:
    """`status` carrying the call's trailing metadata as well as its own."""
    if not call.trailing:
        return status
    own = tuple(status.trailing_metadata or ())
    return Status(status.code, status.details, own + call.trailing)


class Stage(Protocol):
    """One concern of the server chain."""

    def start(self, call: Call) -> grpc.Status | None:
        """None lets the call through; a status refuses it with that status."""
        ...

    def finish(self, call: Call) -> None:
        """The call has ended with `call.code`; called only if `start` let it through."""
        ...


class Gate:
    """Base of a stage that only decides at the start: nothing to do when the call ends."""

    def finish(self, call: Call) -> None:
        return None


def _acts_at_finish(stage: Stage) -> bool:
    """False for a Gate that keeps Gate's finish, which does nothing."""
    finish: object = type(stage).finish
    return finish is not Gate.finish


class Chain:
    """The stages of one server, run in order at the start and in reverse at the end."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        self._stages = tuple(stages)
        # Bound once, not per call: each stage's start, and for every number of
        # stages a call entered, the finishes to run (reversed, without Gates' no-ops).
        self._starts = tuple(stage.start for stage in self._stages)
        self._finishes_after = [
            tuple(
                stage.finish for stage in reversed(self._stages[:entered]) if _acts_at_finish(stage)
            )
            for entered in range(len(self._stages) + 1)
        ]

    def open(
        self, method: RpcMethod, context: CallContext, request: object
    ) -> tuple[Call, grpc.Status | None]:
        """Starts a call through every stage: the call, and the refusal if a stage refused it.

        A refused call is already finished for the stages that let it through.
        """
        call = Call(method, context, request if isinstance(request, Message) else None)
        for entered, start in enumerate(self._starts):
            refusal = start(call)
            if refusal is not None:
                call.entered = entered
                call.code = refusal.code
                call.refusal = refusal
                self.finish(call)
                return call, refusal
        call.entered = len(self._starts)
        if call.trailing:
            context.set_trailing_metadata(call.trailing)
        return call, None

    def finish(self, call: Call) -> None:
        for finish in self._finishes_after[call.entered]:
            finish(call)
