"""Who may call whom, enforced by the server chain on an mTLS server."""

from __future__ import annotations

import json

import grpc
import pytest
from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidecar.authorization import AccessPolicy, Intention, parse_method_rules
from sidecar.identity_sources import dev_ca_identity
from sidecar.server import Server
from sidecar.spiffe import server_name
from tests.security.test_identity import CA

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"
RULES = parse_method_rules(json.dumps({"methods": {PAYOUT: ["reimbursement"]}}))


class CountingPayments(finance_pb2_grpc.PaymentServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    def Payout(self, request, context):
        self.calls += 1
        return finance_pb2.PayoutResponse()


@pytest.fixture
def finance():
    """Finance on mTLS with intentions reimbursement -> finance and hr -> finance."""
    handler = CountingPayments()
    policy = {
        "current": AccessPolicy(
            [
                Intention("reimbursement", "finance", "allow"),
                Intention("hr", "finance", "allow"),
            ],
            RULES,
        )
    }
    server = Server(
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


def channel_as(service: str, address: str) -> grpc.Channel:
    leaf = CA.issue(service)
    credentials = grpc.ssl_channel_credentials(
        CA.ca_pem, leaf.private_key_pem, leaf.certificate_pem
    )
    target = server_name("finance", CA.trust_domain)
    return grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", target)]
    )


def payout(channel: grpc.Channel):
    stub = finance_pb2_grpc.PaymentServiceStub(channel)
    return stub.Payout(finance_pb2.PayoutRequest(), timeout=5)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    info = error_details_pb2.ErrorInfo()
    assert status is not None
    assert status.details[0].Unpack(info)
    return info


class TestAuthorization:
    def test_reimbursement_may_pay(self, finance):
        """The caller the method rule names reaches the handler."""
        handler, address, _ = finance
        with channel_as("reimbursement", address) as channel:
            payout(channel)
        assert handler.calls == 1

    def test_hr_may_not_pay_and_is_told_why(self, finance):
        """hr -> Payout is PERMISSION_DENIED naming caller, target and rule; handler never ran."""
        handler, address, _ = finance
        with channel_as("hr", address) as channel, pytest.raises(grpc.RpcError) as caught:
            payout(channel)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        info = error_info(caught.value)
        assert info.reason == "ACCESS_DENIED"
        assert info.metadata["caller"] == CA.spiffe_id("hr").uri
        assert info.metadata["target"] == "finance" + PAYOUT
        assert PAYOUT in info.metadata["rule"]
        assert handler.calls == 0

    def test_caller_without_intention_is_denied(self, finance):
        """A service with no intention to finance is denied by default."""
        handler, address, _ = finance
        with channel_as("marketing", address) as channel, pytest.raises(grpc.RpcError) as caught:
            payout(channel)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "default deny" in error_info(caught.value).metadata["rule"]
        assert handler.calls == 0

    def test_revoked_intention_applies_to_an_open_connection(self, finance):
        """Replacing the policy denies the next call on a connection opened before."""
        handler, address, policy = finance
        with channel_as("reimbursement", address) as channel:
            payout(channel)
            policy["current"] = AccessPolicy([Intention("reimbursement", "finance", "deny")], RULES)
            with pytest.raises(grpc.RpcError) as caught:
                payout(channel)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert handler.calls == 1
