"""What the asyncio service channel hands back for a unary call, and the loop it lives on.

`UnaryCall` is a grpc.aio.UnaryUnaryCall whose attempts run in one task: the
first attempt starts when the call is made (so NoEndpoint is raised there, as
on the sync channel), later ones when the client chain allows a retry. The
task ends the call's span and releases its endpoints even if nobody awaits it.
Its metadata, code and details are the last attempt's, once the call has
settled.

`EventLoop` is the loop the channel's grpc.aio channels were opened on: the
balancer may retire a channel from the registry's watch thread, and closing it
must happen there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import grpc
import grpc.aio
from grpc.aio import AioRpcError

from deptmesh.sidecar.channel.balancer import Endpoint
from deptmesh.sidecar.channel.client_chain import MethodChain
from deptmesh.sidecar.errors import NoEndpoint

__all__ = ["EventLoop", "UnaryCall"]

# Starts one attempt: (endpoint, timeout, metadata) -> grpc.aio's own call object.
StartAttempt = Callable[[Endpoint[grpc.aio.Channel], float, Any], Any]

_CANCELLED_DETAILS = "Locally cancelled by application!"


class _Cancelled:
    """How a call that was cancelled before it ended settles."""


_CANCELLED = _Cancelled()


class UnaryCall(grpc.aio.UnaryUnaryCall):  # type: ignore[type-arg]
    """A unary-unary call through the client chain, with the retries the chain allows."""

    def __init__(
        self, chain: MethodChain, timeout: float | None, metadata: Any, start: StartAttempt
    ) -> None:
        call = chain.start(timeout, metadata)
        endpoint = chain.attempt(call)
        try:
            self._attempt = start(endpoint, call.time_left(), call.metadata)
        except BaseException:
            chain.abandon(call, endpoint, grpc.StatusCode.UNKNOWN)
            raise
        self._call = call
        self._task = asyncio.get_running_loop().create_task(self._attempts(chain, endpoint, start))

    async def _attempts(
        self, chain: MethodChain, first: Endpoint[grpc.aio.Channel], start: StartAttempt
    ) -> tuple[Any, grpc.RpcError | None]:
        # An error is returned, not raised: a call nobody awaits must not leave a
        # "Task exception was never retrieved" behind (grpc.aio does the same).
        call = self._call
        endpoint = first
        held: Endpoint[grpc.aio.Channel] | None = first  # released by abandon() if set
        try:
            while True:
                try:
                    response = await self._attempt
                except grpc.RpcError as error:
                    held = None
                    pause = chain.after_failure(call, endpoint, error)
                    if pause is None:
                        return None, chain.explained(error)
                    if pause:
                        await asyncio.sleep(pause)  # what the server's RetryInfo asked for
                    endpoint = held = chain.attempt(call)
                    self._attempt = start(endpoint, call.time_left(), call.metadata)
                    continue
                held = None
                chain.after_success(call, endpoint)
                return response, None
        except NoEndpoint as error:
            return None, error  # from chain.attempt, which has ended the call
        except asyncio.CancelledError:
            self._attempt.cancel()
            chain.abandon(call, held, grpc.StatusCode.CANCELLED)
            raise
        except BaseException:
            chain.abandon(call, held, grpc.StatusCode.UNKNOWN)
            raise

    def __await__(self) -> Generator[Any, None, Any]:
        response, error = yield from self._task.__await__()
        if error is not None:
            raise error
        return response

    async def _settled(self) -> grpc.RpcError | _Cancelled | None:
        """How the call ended: its error, cancelled, or None for success. Waiting here
        never cancels the call itself."""
        try:
            _, error = await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if self._task.cancelled():
                return _CANCELLED
            raise  # the waiter was cancelled, not the call
        return error

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def done(self) -> bool:
        return self._task.done()

    def cancel(self) -> bool:
        return self._task.cancel()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._task.add_done_callback(lambda _: callback(self))

    def time_remaining(self) -> float | None:
        return self._call.time_left()

    async def initial_metadata(self) -> grpc.aio.Metadata:
        ended = await self._settled()
        if ended is None:
            return _metadata(await self._attempt.initial_metadata())
        return _metadata(ended.initial_metadata() if isinstance(ended, AioRpcError) else None)

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        ended = await self._settled()
        if ended is None:
            return _metadata(await self._attempt.trailing_metadata())
        return _metadata(ended.trailing_metadata() if isinstance(ended, AioRpcError) else None)

    async def code(self) -> grpc.StatusCode:
        ended = await self._settled()
        if ended is None:
            return grpc.StatusCode.OK
        if isinstance(ended, _Cancelled):
            return grpc.StatusCode.CANCELLED
        return ended.code()

    async def details(self) -> str:
        ended = await self._settled()
        if ended is None:
            return ""
        if isinstance(ended, _Cancelled):
            return _CANCELLED_DETAILS
        return ended.details() or ""

    async def wait_for_connection(self) -> None:
        ended = await self._settled()
        if isinstance(ended, grpc.RpcError):
            raise ended
        if isinstance(ended, _Cancelled):
            raise asyncio.CancelledError


def _metadata(found: object) -> grpc.aio.Metadata:
    """What grpc returned, or empty metadata for a call that never got any."""
    return found if isinstance(found, grpc.aio.Metadata) else grpc.aio.Metadata()


class EventLoop:
    """The event loop a channel's grpc.aio channels were opened on, and the tasks the
    channel started there that nobody awaits (closing channels, ending spans)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def opening(self) -> None:
        """A channel is being opened, on the running loop: the one the others live on."""
        self._loop = asyncio.get_running_loop()

    def spawn(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Runs `work()` on the loop, from any thread; nothing if the loop has closed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._start(loop, work)
            return
        try:
            loop.call_soon_threadsafe(self._start, loop, work)
        except RuntimeError:
            return  # closed meanwhile: its channels went with it

    def _start(
        self, loop: asyncio.AbstractEventLoop, work: Callable[[], Coroutine[Any, Any, Any]]
    ) -> None:
        task = loop.create_task(work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Waits for every task spawned so far (and those they spawn)."""
        while self._tasks:
            # Ending a span never fails a close: observability fails open.
            await asyncio.gather(*self._tasks, return_exceptions=True)
