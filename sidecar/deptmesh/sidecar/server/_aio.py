"""The asyncio twin of deptmesh.sidecar.Server, for services written on grpc.aio.

Same chain, limits, credentials, health-only port and reflection as the sync
server (see stages.py and _binding.py); handlers are coroutines and read the caller with
`deptmesh.sidecar.current_caller()` as sync handlers do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from deptmesh.sidecar.authorization.stage import PolicySource
from deptmesh.sidecar.chain import AioChainInterceptor
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.stage import QuotaStage
from deptmesh.sidecar.server._binding import SERVER_OPTIONS, bind, health_only_address
from deptmesh.sidecar.server._reflection import enable_reflection
from deptmesh.sidecar.server.stages import server_chain
from deptmesh.sidecar.tracing import Tracing

__all__ = ["AioServer"]


class AioServer:
    """One process's grpc.aio server: add services, `await start()`, `await stop()`."""

    def __init__(
        self,
        *,
        identity_source: IdentitySource | None = None,
        authorization: tuple[str, PolicySource] | None = None,
        metering: MeteringStage | None = None,
        quotas: QuotaStage | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """Without an identity source the server is plaintext: for development only.

        The other arguments are those of deptmesh.sidecar.Server.
        """
        self._identity_source = identity_source
        self.metering = metering
        self._grpc = grpc.aio.server(
            interceptors=[
                AioChainInterceptor(
                    server_chain(identity_source, authorization, metering, quotas, tracing)
                )
            ],
            options=SERVER_OPTIONS,
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        self._service_names: list[str] = []
        # As on the sync server: Consul's health check has no client certificate.
        self._health_only: grpc.aio.Server | None = None
        self.health_port = 0

    def add_service(
        self,
        descriptor: ServiceDescriptor,
        register: Callable[[Any, grpc.aio.Server], None],
        servicer: object,
    ) -> None:
        """Adds a servicer, for example `add_service(desc, add_FooServicer_to_server, impl)`."""
        register(servicer, self._grpc)
        self._service_names.append(descriptor.full_name)

    async def start(self, address: str = "127.0.0.1:0") -> int:
        """Starts serving on `address` (port 0 picks a free port); returns the bound port."""
        port = bind(self._grpc, address, self._identity_source)
        enable_reflection(self._service_names, self._grpc)
        await self._grpc.start()
        self.health_port = port
        if self._identity_source is not None:
            self._health_only = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_only)
            self.health_port = self._health_only.add_insecure_port(health_only_address(address))
            await self._health_only.start()
        for name in ["", *self._service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return port

    async def stop(self, grace_seconds: float) -> None:
        """Reports NOT_SERVING, refuses new calls, lets in-flight calls finish within the grace."""
        await self._health.enter_graceful_shutdown()
        await self._grpc.stop(grace_seconds)
        if self._health_only is not None:
            await self._health_only.stop(0)
