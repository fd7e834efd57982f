"""Reimbursement as a department: store, the departments it calls, workflow, retrier."""

from __future__ import annotations

import argparse

from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from deptmesh.services.reimbursement.departments import CALL_TIMEOUT_SECONDS, Departments
from deptmesh.services.reimbursement.payout_retrier import PayoutRetrier
from deptmesh.services.reimbursement.servicer import ReimbursementServicer
from deptmesh.services.reimbursement.store import ClaimStore
from deptmesh.services.reimbursement.workflow import ClaimWorkflow
from deptmesh.sidecar import Closer, Department, HostContext


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--payout-retry-seconds",
        type=float,
        default=5.0,
        help="how often payouts that failed are retried (default 5)",
    )


def build(host: HostContext) -> Closer:
    departments = Departments(
        hr=host.connect("hr", timeout=CALL_TIMEOUT_SECONDS),
        finance=host.connect("finance", timeout=CALL_TIMEOUT_SECONDS),
    )
    store = ClaimStore(host.db)
    workflow = ClaimWorkflow(store, departments)
    retrier = PayoutRetrier(workflow, host.flags.payout_retry_seconds)
    host.server.add_service(
        reimbursement_pb2.DESCRIPTOR.services_by_name["ReimbursementService"],
        reimbursement_pb2_grpc.add_ReimbursementServiceServicer_to_server,
        ReimbursementServicer(store, workflow),
    )
    retrier.start()

    def close() -> None:
        retrier.stop()
        store.close()

    return close


REIMBURSEMENT = Department(
    name="reimbursement",
    contract_version="v1",
    build=build,
    add_flags=add_flags,
    description="Reimbursement: expense claims, approved by the manager HR names and paid by"
    " finance (deptmesh.reimbursement.v1). Needs --consul-address to find them.",
)
