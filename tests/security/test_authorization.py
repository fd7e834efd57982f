"""Who may call whom, enforced by the server chain on an mTLS server.

Each refusal asserts the status, that the handler never ran, and that the server
goes on serving an allowed caller afterwards.
"""

from __future__ import annotations

import grpc
import pytest

from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention
from tests.security.mtls import CA, PAYOUT, RULES, channel_as, error_info, payout


def still_serving(finance) -> None:
    """The caller the rule allows still reaches the handler, and only it did."""
    handler, address, _ = finance
    with channel_as("reimbursement", address) as channel:
        payout(channel)
    assert handler.calls == 1


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
        still_serving(finance)

    @pytest.mark.parametrize(
        "claim",
        [
            ("x-caller", "reimbursement"),
            ("x-forwarded-client-cert", f"URI={CA.spiffe_id('reimbursement').uri}"),
            ("baggage", "caller=reimbursement,deptmesh.caller=reimbursement"),
        ],
        ids=["x-caller", "xfcc", "baggage"],
    )
    def test_denied_caller_claiming_another_identity_is_still_denied(self, finance, claim):
        """Metadata naming an allowed caller changes nothing: hr is still hr, and denied."""
        handler, address, _ = finance
        with channel_as("hr", address) as channel, pytest.raises(grpc.RpcError) as caught:
            payout(channel, metadata=(claim,))
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert error_info(caught.value).metadata["caller"] == CA.spiffe_id("hr").uri
        assert handler.calls == 0
        still_serving(finance)

    def test_caller_without_intention_is_denied(self, finance):
        """A service with no intention to finance is denied by default."""
        handler, address, _ = finance
        with channel_as("marketing", address) as channel, pytest.raises(grpc.RpcError) as caught:
            payout(channel)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "default deny" in error_info(caught.value).metadata["rule"]
        assert handler.calls == 0
        still_serving(finance)

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
