"""The server side of bench/overhead.py: one process per configuration.

`python -m bench.overhead serve NAME CERTS_DIR` starts configuration NAME (a
grpc.aio server serving hr's GetEmployee over mTLS, with the dev CA's
certificates in CERTS_DIR), prints its port and serves until its stdin closes.
The configurations are described in bench/overhead.py.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import AioServer
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.chain import AioChainInterceptor
from deptmesh.sidecar.chain.core import Call, Chain, Gate
from deptmesh.sidecar.identity.sources import ServerIdentity
from deptmesh.sidecar.logs import configure_logging
from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.minutes import UsageByMinute
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.policy import parse_quota_policy
from deptmesh.sidecar.quotas.stage import REMAINING_KEY, QuotaStage, method_cost
from deptmesh.sidecar.tracing import Tracing

SERVER, CALLER = "hr", "reimbursement"
_RESPONSE = hr_pb2.GetEmployeeResponse(
    employee=hr_pb2.Employee(employee_id="E1001", display_name="Ada Lovelace")
)


class Employees(hr_pb2_grpc.EmployeeServiceServicer):
    async def GetEmployee(  # type: ignore[override]
        self, request: hr_pb2.GetEmployeeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> hr_pb2.GetEmployeeResponse:
        return _RESPONSE


# How a configuration's server starts: (its identity, a directory for its files) -> port.
Serve = Callable[[ServerIdentity, Path], Awaitable[int]]
_running: list[grpc.aio.Server | AioServer] = []  # the server of this process


async def _bare(identity: ServerIdentity, _: Path, interceptors: Sequence[Any] = ()) -> int:
    server = grpc.aio.server(interceptors=interceptors)
    hr_pb2_grpc.add_EmployeeServiceServicer_to_server(Employees(), server)
    credentials = grpc.ssl_server_credentials(
        [(identity.private_key_pem, identity.certificate_pem)],
        root_certificates=identity.trust_bundle_pem,
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    _running.append(server)
    return port


async def _sidecar(server: AioServer) -> int:
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        Employees(),
    )
    _running.append(server)
    return await server.start("127.0.0.1:0")


_ACCESS = AccessPolicy([Intention(CALLER, SERVER, "allow")], MethodRules({}))
# Generous enough never to throttle the benchmark: the cost of checking is measured.
_QUOTAS = parse_quota_policy(
    json.dumps(
        {
            "tiers": {"standard": {"rate": 1e9, "burst": 1e9, "max_in_flight": 1000}},
            "default_tier": "standard",
        }
    )
)


async def _authz(identity: ServerIdentity, _: Path) -> int:
    """Identity and authorization."""
    return await _sidecar(
        AioServer(identity_source=lambda: identity, authorization=(SERVER, lambda: _ACCESS))
    )


async def _quota(identity: ServerIdentity, _: Path) -> int:
    """Identity, usage metering, authorization and quota."""
    return await _sidecar(
        AioServer(
            identity_source=lambda: identity,
            authorization=(SERVER, lambda: _ACCESS),
            metering=MeteringStage(SERVER),
            quotas=QuotaStage(SERVER, lambda: _QUOTAS, lambda: 1),
        )
    )


async def _full(identity: ServerIdentity, directory: Path, sampling_ratio: float = 1.0) -> int:
    """Everything a department runs: identity, tracing to the local trace store, usage
    metering with the access log written to a file and usage counted per minute for the
    usage ledger, authorization, quota."""
    log_file = (directory / "access.log").open("a")
    configure_logging("json", file=log_file)
    tracing = Tracing.start(
        SERVER,
        store_path=directory / "traces.sqlite",
        sampling_ratio=sampling_ratio,
    )
    return await _sidecar(
        AioServer(
            identity_source=lambda: identity,
            authorization=(SERVER, lambda: _ACCESS),
            metering=MeteringStage(
                SERVER,
                access_log=AccessLog(log_file),
                by_minute=UsageByMinute(SERVER, cost_of=method_cost),
            ),
            quotas=QuotaStage(SERVER, lambda: _QUOTAS, lambda: 1),
            tracing=tracing,
        )
    )


async def _sampled1(identity: ServerIdentity, directory: Path) -> int:
    """The full chain with 1% of traces sampled."""
    return await _full(identity, directory, sampling_ratio=0.01)


async def _otel_contrib(identity: ServerIdentity, directory: Path) -> int:
    """Bare grpc.aio with opentelemetry-instrumentation-grpc's server interceptor alone,
    exporting to the same trace store, for comparison."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    tracing = Tracing.start(SERVER, store_path=directory / "traces.sqlite")
    return await _bare(
        identity, directory, [aio_server_interceptor(tracer_provider=tracing.provider)]
    )


class _FloorStage(Gate):
    """What any chain with the sidecar's duties must do per call, and nothing else.

    Identity has to read the verified certificate (auth_context: the SAN list
    alone cannot tell a CA certificate from a leaf), tracing the trace headers
    and a fresh span id, the quota the trailer; the results go into one
    context variable and nothing is decided, counted or recorded.
    """

    def __init__(self) -> None:
        self._known: dict[bytes, str] = {}

    def start(self, call: Call) -> None:
        context = call.context
        certificate = context.auth_context()["x509_pem_cert"][0]
        caller = self._known.setdefault(certificate, CALLER)
        traceparent = None
        for key, value in context.invocation_metadata() or ():
            if key == "traceparent":
                traceparent = value
        _FLOOR_CALL.set((caller, traceparent, random.getrandbits(64)))
        call.trailing = ((REMAINING_KEY, "1"),)


_FLOOR_CALL: contextvars.ContextVar[object] = contextvars.ContextVar("floor_call")


async def _floor(identity: ServerIdentity, directory: Path) -> int:
    """Bare grpc.aio with a one-stage chain doing only what every chain must (above)."""
    return await _bare(identity, directory, [AioChainInterceptor(Chain([_FloorStage()]))])


# name -> how its server starts; the first is the baseline the others are divided by.
CONFIGURATIONS: dict[str, Serve] = {
    "bare": _bare,
    "authz": _authz,
    "quota": _quota,
    "full": _full,
    "sampled1": _sampled1,
    "otel_contrib": _otel_contrib,
    "floor": _floor,
}
# Client configurations: name -> the server configuration it calls, through
# aio_connect instead of a bare grpc.aio channel. Each is measured (and reported)
# right after that server's own row, so that every server configuration still
# follows the same one as without it: a round on a server warms it for the next.
CLIENT_CONFIGURATIONS = {"aio_connect": "bare"}
# What the summary line reports: these ratios, and the latency `full` adds.
SUMMARY = ("full", "sampled1", "otel_contrib")


async def serve(name: str, certs: Path) -> None:
    """Runs configuration `name` until stdin closes; prints its port first."""
    directory = certs / name
    directory.mkdir()
    identity = ServerIdentity(
        (certs / "server.key").read_bytes(),
        (certs / "server.pem").read_bytes(),
        (certs / "ca.pem").read_bytes(),
        (certs / "trust-domain").read_text(),
    )
    print(await CONFIGURATIONS[name](identity, directory), flush=True)
    # Serve until the parent closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in _running:
        await server.stop(0)
