"""A finance PaymentService whose calls a test can hold, and the quota policy those tests use."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.identity.sources import dev_ca_identity
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.policy import QuotaPolicy, parse_quota_policy
from deptmesh.sidecar.quotas.stage import QuotaStage
from tests.aio_servers import AioServerThread
from tests.security.mtls import CA

RESPONSE = finance_pb2.PayoutResponse(payout=finance_pb2.Payout(payout_id="p-1"))


def quota_policy(**tiers: dict[str, object]) -> QuotaPolicy:
    """Reimbursement in `standard`, everyone else in `default`, unless `tiers` say otherwise:
    a burst of 2 and no refill within a test."""
    tier = {"rate": 0.001, "burst": 2, "max_in_flight": 10}
    document = {
        "tiers": {"standard": tier, "default": tier, **tiers},
        "default_tier": "default",
        "services": {"finance": {"callers": {"reimbursement": "standard"}}},
    }
    return parse_quota_policy(json.dumps(document))


class GatedPayments(finance_pb2_grpc.PaymentServiceServicer):
    """Payout counts its calls; each waits for `gate` (open unless a test closes it),
    then for `hold_seconds` (a slow handler, for latency)."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.hold_seconds = 0.0

    def Payout(self, request, context):  # type: ignore[no-untyped-def]
        self.calls += 1
        self.entered.set()
        self.gate.wait(10)
        time.sleep(self.hold_seconds)
        return RESPONSE


class AsyncGatedPayments(GatedPayments):
    """The same handler for the asyncio server."""

    async def Payout(self, request, context):  # type: ignore[no-untyped-def,override]
        self.calls += 1
        self.entered.set()
        await asyncio.to_thread(self.gate.wait, 10)
        await asyncio.sleep(self.hold_seconds)
        return RESPONSE


class MeteredFinance:
    """Finance on mTLS (dev CA) with usage metering, quotas under a policy the test can
    swap, and intentions letting reimbursement and payroll in; sync or asyncio."""

    def __init__(self, flavour: str) -> None:
        aio = flavour == "aio"
        self.handler = AsyncGatedPayments() if aio else GatedPayments()
        self.policy = quota_policy()
        self.usage = MeteringStage("finance")
        self.quotas = QuotaStage("finance", lambda: self.policy, lambda: 1)
        access = AccessPolicy(
            [
                Intention("reimbursement", "finance", "allow"),
                Intention("payroll", "finance", "allow"),
            ],
            MethodRules({}),
        )
        self.server = (AioServerThread if aio else Server)(
            identity_source=dev_ca_identity(CA, "finance"),
            authorization=("finance", lambda: access),
            metering=self.usage,
            quotas=self.quotas,
        )
        self.server.add_service(
            finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
            finance_pb2_grpc.add_PaymentServiceServicer_to_server,
            self.handler,
        )
        self.address = f"127.0.0.1:{self.server.start('127.0.0.1:0')}"
