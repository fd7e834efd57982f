"""Hostile requests on an mTLS server: each gets a clear status, never UNKNOWN, the
handler never runs, and the server keeps serving everyone else."""

from __future__ import annotations

import grpc
import pytest

from deptmesh.finance.v1 import finance_pb2
from tests.rpc_errors import bad_request_fields
from tests.security.mtls import PAYOUT, CountingPayments, channel_as, payout

# The largest message a server accepts, in either direction: 4 MiB (gRPC's own default).
# Pinned rather than imported, so that a change to the limit fails a test.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def raw_call(channel: grpc.Channel, path: str, payload: bytes, metadata=()) -> grpc.RpcError:
    call = channel.unary_unary(path)
    with pytest.raises(grpc.RpcError) as caught:
        call(payload, metadata=metadata, timeout=5)
    return caught.value


def still_serving(address: str, handler: CountingPayments) -> None:
    before = handler.calls
    with channel_as("reimbursement", address) as channel:
        payout(channel)
    assert handler.calls == before + 1


class TestHostileRequests:
    @pytest.mark.parametrize(
        "path",
        [
            PAYOUT.lower(),
            PAYOUT + "/",
            PAYOUT.replace("/Payout", "//Payout"),
            "/" + PAYOUT,
            PAYOUT.replace("PaymentService", "paymentservice"),
        ],
    )
    def test_method_path_variants_are_unimplemented(self, finance, path):
        """Case, `//` and trailing `/` variants dispatch nowhere: UNIMPLEMENTED."""
        handler, address, _ = finance
        with channel_as("reimbursement", address) as channel:
            error = raw_call(channel, path, finance_pb2.PayoutRequest().SerializeToString())
        assert error.code() is grpc.StatusCode.UNIMPLEMENTED
        assert handler.calls == 0
        still_serving(address, handler)

    def test_malformed_protobuf_is_refused(self, finance):
        """Bytes that are not a PayoutRequest are INVALID_ARGUMENT naming the type; no handler."""
        handler, address, _ = finance
        with channel_as("reimbursement", address) as channel:
            error = raw_call(channel, PAYOUT, b"\xff\xff\xff\xff\x0f garbage")
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(error) == {
            "request": "not a valid deptmesh.finance.v1.PayoutRequest message"
        }
        assert handler.calls == 0
        still_serving(address, handler)

    def test_oversized_message_is_resource_exhausted(self, finance):
        """A message over the server's limit is RESOURCE_EXHAUSTED; the handler never runs."""
        handler, address, _ = finance
        big = finance_pb2.PayoutRequest(memo="x" * (MAX_MESSAGE_BYTES + 1)).SerializeToString()
        with channel_as("reimbursement", address) as channel:
            error = raw_call(channel, PAYOUT, big)
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert handler.calls == 0
        still_serving(address, handler)

    def test_message_at_the_limit_is_served(self, finance):
        """A request of exactly the limit (4 MiB) reaches the handler."""
        handler, address, _ = finance
        overhead = len(finance_pb2.PayoutRequest(memo="x" * MAX_MESSAGE_BYTES).SerializeToString())
        memo = "x" * (2 * MAX_MESSAGE_BYTES - overhead)
        assert len(finance_pb2.PayoutRequest(memo=memo).SerializeToString()) == MAX_MESSAGE_BYTES
        with channel_as("reimbursement", address) as channel:
            payout(channel, request=finance_pb2.PayoutRequest(memo=memo))
        assert handler.calls == 1

    def test_oversized_metadata_is_refused(self, finance):
        """Metadata beyond the server's limit never reaches the handler."""
        handler, address, _ = finance
        with channel_as("reimbursement", address) as channel:
            error = raw_call(
                channel,
                PAYOUT,
                finance_pb2.PayoutRequest().SerializeToString(),
                metadata=[("x-padding", "p" * 64 * 1024)],
            )
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert handler.calls == 0
        still_serving(address, handler)
