"""Access policy from Consul: intentions and the method-rules document, watched."""

from __future__ import annotations

import json
import time
import uuid

from structlog.testing import capture_logs

from sidecar.policy_sources import ConsulAccessPolicy
from tests.integration.servers import wait_for

PAYOUT = "/deptmesh.finance.v1.PaymentService/Payout"


def test_policy_follows_intentions_and_rules(consul):
    """Intentions and rules written to Consul apply without a restart; a revoked
    intention denies within 5 s; a bad rules document is rejected and changes nothing."""
    source, target = f"caller-{uuid.uuid4().hex[:6]}", f"target-{uuid.uuid4().hex[:6]}"
    rules_key = f"deptmesh/test/{uuid.uuid4().hex[:6]}"
    policy = ConsulAccessPolicy(consul, rules_key=rules_key)
    try:
        assert not policy().decide(source, target, PAYOUT).allowed  # default deny

        consul.set_intention(source, target, "allow")
        wait_for(lambda: policy().decide(source, target, PAYOUT).allowed, timeout=5)

        consul.kv_put(rules_key, json.dumps({"methods": {PAYOUT: ["someone-else"]}}))
        wait_for(lambda: not policy().decide(source, target, PAYOUT).allowed, timeout=5)

        with capture_logs() as logs:
            consul.kv_put(rules_key, '{"methods": "not a map"}')
            wait_for(lambda: any(e["event"] == "method_rules_rejected" for e in logs), timeout=5)
        assert "someone-else" in policy().decide(source, target, PAYOUT).rule  # last good kept

        consul.kv_put(rules_key, json.dumps({"methods": {}}))
        wait_for(lambda: policy().decide(source, target, PAYOUT).allowed, timeout=5)

        revoked_at = time.monotonic()
        consul.set_intention(source, target, "deny")
        wait_for(lambda: not policy().decide(source, target, PAYOUT).allowed, timeout=5)
        assert time.monotonic() - revoked_at < 5
    finally:
        policy.stop()
