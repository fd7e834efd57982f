"""Access policy from Consul: intentions and the method-rules document, watched."""

from __future__ import annotations

import json
import time
import uuid

import grpc
from structlog.testing import capture_logs

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.sources import ConsulAccessPolicy
from deptmesh.sidecar.identity.sources import dev_ca_identity
from tests.integration.servers import wait_for
from tests.security.mtls import CA, CountingPayments, channel_as, payout

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"


def rules_key() -> str:
    """A method-rules document of the test's own, where departments may read it."""
    return f"deptmesh/policy/test/{uuid.uuid4().hex[:6]}/method-rules"


def test_policy_follows_intentions_and_rules(platform, department):
    """Intentions and rules the platform writes to Consul apply without a restart at a
    department that reads them with its own token; a revoked intention denies within
    5 s; a bad rules document is rejected and changes nothing."""
    source, target = f"caller-{uuid.uuid4().hex[:6]}", f"target-{uuid.uuid4().hex[:6]}"
    key = rules_key()
    consul = platform
    policy = ConsulAccessPolicy(department(target), rules_key=key)
    try:
        assert not policy().decide(source, target, PAYOUT).allowed  # default deny

        consul.set_intention(source, target, "allow")
        wait_for(lambda: policy().decide(source, target, PAYOUT).allowed, timeout=5)

        consul.kv_put(key, json.dumps({"methods": {PAYOUT: ["someone-else"]}}))
        wait_for(lambda: not policy().decide(source, target, PAYOUT).allowed, timeout=5)

        with capture_logs() as logs:
            consul.kv_put(key, '{"methods": "not a map"}')
            wait_for(lambda: any(e["event"] == "method_rules_rejected" for e in logs), timeout=5)
        assert "someone-else" in policy().decide(source, target, PAYOUT).rule  # last good kept

        consul.kv_put(key, json.dumps({"methods": {}}))
        wait_for(lambda: policy().decide(source, target, PAYOUT).allowed, timeout=5)

        revoked_at = time.monotonic()
        consul.set_intention(source, target, "deny")
        wait_for(lambda: not policy().decide(source, target, PAYOUT).allowed, timeout=5)
        assert time.monotonic() - revoked_at < 5
    finally:
        policy.stop()


def test_revoked_intention_denies_on_an_open_connection_within_5s(platform, department):
    """A server following Consul's intentions denies the next call on a connection that was
    already open, within 5 s of the intention being revoked."""
    source, target = f"caller{uuid.uuid4().hex[:6]}", f"target{uuid.uuid4().hex[:6]}"
    consul = platform
    policy = ConsulAccessPolicy(department(target), rules_key=rules_key())
    consul.set_intention(source, target, "allow")
    wait_for(lambda: policy().decide(source, target, PAYOUT).allowed, timeout=5)
    handler = CountingPayments()
    server = Server(identity_source=dev_ca_identity(CA, "finance"), authorization=(target, policy))
    server.add_service(
        finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        finance_pb2_grpc.add_PaymentServiceServicer_to_server,
        handler,
    )
    address = f"127.0.0.1:{server.start('127.0.0.1:0')}"
    try:
        with channel_as(source, address) as channel:
            payout(channel)
            revoked_at = time.monotonic()
            consul.set_intention(source, target, "deny")

            def denied() -> bool:
                try:
                    payout(channel)
                except grpc.RpcError as error:
                    return error.code() is grpc.StatusCode.PERMISSION_DENIED
                return False

            wait_for(denied, timeout=5, what="the revocation on the open connection")
            assert time.monotonic() - revoked_at < 5
    finally:
        server.stop(0)
        policy.stop()
