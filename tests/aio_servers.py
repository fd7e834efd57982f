"""Runs a deptmesh.sidecar.AioServer on its own event loop thread, for sync tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from deptmesh.sidecar import AioServer

T = TypeVar("T")


class AioServerThread:
    """An AioServer used like deptmesh.sidecar.Server: start and stop block."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server = self.run(_build(options))  # grpc.aio binds a server to its loop

    @property
    def health_port(self) -> int:
        return self.server.health_port

    def add_service(self, *service: Any) -> None:
        self.server.add_service(*service)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def start(self, address: str = "127.0.0.1:0") -> int:
        return self.run(self.server.start(address))

    def stop(self, grace_seconds: float = 0) -> None:
        self.run(self.server.stop(grace_seconds))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


async def _build(options: dict[str, Any]) -> AioServer:
    return AioServer(**options)
