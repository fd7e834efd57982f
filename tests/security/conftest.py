"""The mTLS finance server the security tests attack."""

from __future__ import annotations

import pytest

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention
from deptmesh.sidecar.identity.sources import dev_ca_identity
from tests.aio_servers import AioServerThread
from tests.security.mtls import CA, RULES, AsyncCountingPayments, CountingPayments


@pytest.fixture(params=["sync", "aio"])
def finance(request):
    """Finance on mTLS with intentions reimbursement -> finance and hr -> finance.

    Every security test runs against the sync and the asyncio server: they share
    one chain, and both must hold.
    """
    handler = AsyncCountingPayments() if request.param == "aio" else CountingPayments()
    policy = {
        "current": AccessPolicy(
            [
                Intention("reimbursement", "finance", "allow"),
                Intention("hr", "finance", "allow"),
            ],
            RULES,
        )
    }
    flavour = AioServerThread if request.param == "aio" else Server
    server = flavour(
        identity_source=dev_ca_identity(CA, "finance"),
        authorization=("finance", lambda: policy["current"]),
    )
    server.add_service(
        finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        finance_pb2_grpc.add_PaymentServiceServicer_to_server,
        handler,
    )
    port = server.start("127.0.0.1:0")
    yield handler, f"127.0.0.1:{port}", policy
    server.stop(0)
