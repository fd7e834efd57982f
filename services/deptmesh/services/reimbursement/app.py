"""Wires reimbursement together: store, the departments it calls, workflow, retrier, server."""

from __future__ import annotations

import argparse

from deptmesh.registry.cache import EndpointCache
from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from deptmesh.services.reimbursement.departments import Departments
from deptmesh.services.reimbursement.payout_retrier import PayoutRetrier
from deptmesh.services.reimbursement.servicer import ReimbursementServicer
from deptmesh.services.reimbursement.store import ClaimStore
from deptmesh.services.reimbursement.workflow import ClaimWorkflow
from deptmesh.sidecar.host.runner import RunningService, ServiceOptions, server_for

NAME = "reimbursement"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--payout-retry-seconds",
        type=float,
        default=5.0,
        help="how often payouts that failed are retried",
    )


def build(options: ServiceOptions) -> RunningService:
    if options.registry is None:
        raise ValueError(
            "reimbursement finds HR and finance through the registry: give --consul-address"
        )
    store = ClaimStore(options.db)
    cache = EndpointCache(options.registry)
    departments = Departments(cache, options.identity, options.tracing)
    workflow = ClaimWorkflow(store, departments)
    retrier = PayoutRetrier(workflow, getattr(options.extra, "payout_retry_seconds", 5.0))
    server = server_for(NAME, options)
    server.add_service(
        reimbursement_pb2.DESCRIPTOR.services_by_name["ReimbursementService"],
        reimbursement_pb2_grpc.add_ReimbursementServiceServicer_to_server,
        ReimbursementServicer(store, workflow),
    )
    retrier.start()

    def close() -> None:
        retrier.stop()
        departments.close()
        cache.close()
        store.close()

    return RunningService(server=server, close=close)
