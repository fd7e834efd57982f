"""An mTLS finance PaymentService for security tests, and callers with dev CA leaves."""

from __future__ import annotations

import json

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.sidecar.authorization.policy import parse_method_rules
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.identity.spiffe import server_name

# One CA for the whole security suite: every server and caller chains to it.
CA = DevCertificateAuthority()

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
RULES = parse_method_rules(json.dumps({"methods": {PAYOUT: ["reimbursement"]}}))


class CountingPayments(finance_pb2_grpc.PaymentServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    def Payout(self, request, context):
        self.calls += 1
        return finance_pb2.PayoutResponse()


class AsyncCountingPayments(CountingPayments):
    """The same handler for the asyncio server."""

    async def Payout(self, request, context):  # type: ignore[override]
        self.calls += 1
        return finance_pb2.PayoutResponse()


def channel_as(service: str, address: str) -> grpc.Channel:
    leaf = CA.issue(service)
    credentials = grpc.ssl_channel_credentials(
        CA.ca_pem, leaf.private_key_pem, leaf.certificate_pem
    )
    target = server_name("finance", CA.trust_domain)
    return grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", target)]
    )


def payout(channel: grpc.Channel, metadata=(), request: finance_pb2.PayoutRequest | None = None):
    stub = finance_pb2_grpc.PaymentServiceStub(channel)
    return stub.Payout(request or finance_pb2.PayoutRequest(), metadata=metadata, timeout=5)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    info = error_details_pb2.ErrorInfo()
    assert status is not None
    assert status.details[0].Unpack(info)
    return info
