"""A gRPC server with the deptmesh server chain, health and reflection built in.

The chain and the credentials are the ones the asyncio server uses too (see
stages.py and _binding.py); this module is the thread-pool flavour.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from deptmesh.sidecar.authorization.stage import PolicySource
from deptmesh.sidecar.chain import ChainInterceptor
from deptmesh.sidecar.identity.sources import IdentitySource, ServerIdentity
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.stage import QuotaStage
from deptmesh.sidecar.server._binding import SERVER_OPTIONS, bind, health_only_address
from deptmesh.sidecar.server._reflection import enable_reflection
from deptmesh.sidecar.server.stages import server_chain
from deptmesh.sidecar.tracing import Tracing

__all__ = ["IdentitySource", "PolicySource", "Server", "ServerIdentity"]


class Server:
    """One process's gRPC server: add services, start on a port, stop gracefully."""

    def __init__(
        self,
        *,
        identity_source: IdentitySource | None = None,
        authorization: tuple[str, PolicySource] | None = None,
        metering: MeteringStage | None = None,
        quotas: QuotaStage | None = None,
        tracing: Tracing | None = None,
        max_workers: int = 16,
    ) -> None:
        """Without an identity source the server is plaintext: for development only.

        `authorization` is (this service's name, where its access policy comes from);
        `metering` counts every call per caller; `quotas` holds callers to their tiers;
        `tracing` opens a server span per call.
        """
        self._identity_source = identity_source
        self.metering = metering
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            interceptors=[
                ChainInterceptor(
                    server_chain(identity_source, authorization, metering, quotas, tracing)
                )
            ],
            options=SERVER_OPTIONS,
        )
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        self._service_names: list[str] = []
        self._stopped = threading.Event()
        # Consul's gRPC health check presents no client certificate, so an mTLS
        # server answers it on a second, plaintext port serving grpc.health.v1
        # and nothing else.
        self._health_only: grpc.Server | None = None
        self.health_port = 0

    def add_service(
        self,
        descriptor: ServiceDescriptor,
        register: Callable[[Any, grpc.Server], None],
        servicer: object,
    ) -> None:
        """Adds a servicer, for example `add_service(desc, add_FooServicer_to_server, impl)`."""
        register(servicer, self._grpc)
        self._service_names.append(descriptor.full_name)

    def start(self, address: str = "127.0.0.1:0") -> int:
        """Starts serving on `address` (port 0 picks a free port); returns the bound port."""
        port = bind(self._grpc, address, self._identity_source)
        enable_reflection(self._service_names, self._grpc)
        self._grpc.start()
        self.health_port = port
        if self._identity_source is not None:
            self._health_only = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_only)
            self.health_port = self._health_only.add_insecure_port(health_only_address(address))
            self._health_only.start()
        for name in ["", *self._service_names]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return port

    def stop(self, grace_seconds: float) -> None:
        """Reports NOT_SERVING, refuses new calls, lets in-flight calls finish within the grace."""
        self._health.enter_graceful_shutdown()
        self._grpc.stop(grace_seconds).wait()
        if self._health_only is not None:
            self._health_only.stop(0).wait()
        self._stopped.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)
