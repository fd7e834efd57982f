"""A server in its own process that logs as a department service does, for
tests/security/test_log_injection.py.

`python -m tests.security.logging_server DIR --flavour sync|aio --log-format json|console`
serves hr's EmployeeService on mTLS through the sidecar chain, its identity read
from DIR (cert.pem, key.pem, bundle.pem, trust-domain) with FileIdentity. It
prints `serving on 127.0.0.1:PORT` and stops when its standard input closes.
Logging is set up by `configure_logging`, as in every service process, so its
standard error is exactly what a log shipper would read. It runs apart from the
test process because structlog's configuration is process-wide and caches loggers.

Its handler is careless on purpose, as handlers will be: it logs the caller's
SPIFFE ID, the requested employee id and the `note-bin` metadata as they come,
and for ids starting with "missing" it fails unexpectedly with the id in the
exception message, which the sidecar logs (`handler_failed`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import structlog

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import AioServer, Server
from deptmesh.sidecar.caller import current_caller
from deptmesh.sidecar.identity.sources import FileIdentity
from deptmesh.sidecar.logs import configure_logging

_log = structlog.get_logger("deptmesh.hr")
SERVICE = hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"]


def look_up(request: hr_pb2.GetEmployeeRequest, metadata) -> hr_pb2.GetEmployeeResponse:
    note = dict(metadata).get("note-bin", b"")
    _log.info(
        "employee_lookup",
        caller=current_caller().spiffe_id,
        employee_id=request.employee_id,
        note=note.decode("utf-8", errors="replace"),
    )
    if request.employee_id.startswith("missing"):
        raise LookupError(f"no employee {request.employee_id}")
    return hr_pb2.GetEmployeeResponse(employee=hr_pb2.Employee(employee_id=request.employee_id))


class CarelessEmployees(hr_pb2_grpc.EmployeeServiceServicer):
    def GetEmployee(self, request, context):
        return look_up(request, context.invocation_metadata())


class AsyncCarelessEmployees(hr_pb2_grpc.EmployeeServiceServicer):
    async def GetEmployee(self, request, context):  # type: ignore[override]
        return look_up(request, context.invocation_metadata())


def identity(directory: Path) -> FileIdentity:
    return FileIdentity(
        directory / "cert.pem",
        directory / "key.pem",
        directory / "bundle.pem",
        (directory / "trust-domain").read_text(),
    )


def announce(port: int) -> None:
    sys.stdout.write(f"serving on 127.0.0.1:{port}\n")
    sys.stdout.flush()


def serve_sync(directory: Path) -> None:
    server = Server(identity_source=identity(directory))
    server.add_service(
        SERVICE, hr_pb2_grpc.add_EmployeeServiceServicer_to_server, CarelessEmployees()
    )
    announce(server.start("127.0.0.1:0"))
    sys.stdin.read()
    server.stop(0)


async def serve_aio(directory: Path) -> None:
    server = AioServer(identity_source=identity(directory))
    server.add_service(
        SERVICE, hr_pb2_grpc.add_EmployeeServiceServicer_to_server, AsyncCarelessEmployees()
    )
    announce(await server.start("127.0.0.1:0"))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--flavour", choices=["sync", "aio"], required=True)
    parser.add_argument("--log-format", choices=["json", "console"], required=True)
    args = parser.parse_args()
    configure_logging(args.log_format)
    if args.flavour == "aio":
        asyncio.run(serve_aio(args.directory))
    else:
        serve_sync(args.directory)


if __name__ == "__main__":
    main()
