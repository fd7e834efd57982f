"""Travel as a department: its store, HR over the mesh, its servicer on the host's server."""

from __future__ import annotations

import argparse

from deptmesh.services.travel.employees import Employees
from deptmesh.services.travel.servicer import TripServicer
from deptmesh.services.travel.store import TripStore
from deptmesh.sidecar import Closer, Department, HostContext
from deptmesh.travel.v1 import travel_pb2, travel_pb2_grpc


def _positive_seconds(text: str) -> float:
    seconds = float(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return seconds


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hr-timeout-seconds",
        type=_positive_seconds,
        default=3.0,
        help="how long asking HR about a traveller may take (default 3)",
    )


def build(host: HostContext) -> Closer:
    employees = Employees(host.connect("hr", timeout=host.flags.hr_timeout_seconds))
    store = TripStore(host.db)
    host.server.add_service(
        travel_pb2.DESCRIPTOR.services_by_name["TripService"],
        travel_pb2_grpc.add_TripServiceServicer_to_server,
        TripServicer(store, employees),
    )
    return store.close


TRAVEL = Department(
    name="travel",
    contract_version="v1",
    build=build,
    add_flags=add_flags,
    description="Travel: employees' business trips, each checked with HR (deptmesh.travel.v1)."
    " Needs --consul-address to find HR.",
)
