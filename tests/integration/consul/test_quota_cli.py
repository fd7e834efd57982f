"""`deptmesh quota`: the policy in Consul KV and the usage instances report, on a real agent.

It runs its own agent: the policy it writes at the well-known key must not
limit services other tests run on the shared one.
"""

from __future__ import annotations

import json

import grpc
import pytest

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.policy import AccessPolicy, Intention, MethodRules
from deptmesh.sidecar.cli.command import main
from deptmesh.sidecar.identity.sources import dev_ca_identity
from deptmesh.sidecar.metering.report import UsageReporter
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY, consul_quota_policy
from deptmesh.sidecar.quotas.stage import QuotaStage
from tests.security.mtls import CA, CountingPayments, channel_as, payout

POLICY = {
    "tiers": {
        "critical": {"rate": 0.001, "burst": 2, "max_in_flight": 8},
        "standard": {"rate": 5, "burst": 10, "max_in_flight": 4, "shadow": True},
    },
    "default_tier": "standard",
    "services": {"finance": {"callers": {"reimbursement": "critical"}}},
}


def test_quota_command_shows_policy_and_usage_per_caller(capsys, tmp_path):
    """The tiers, the assignments, and each caller's calls and throttles as reported, read
    with the platform's token from --consul-token-file."""
    with DevAgent() as agent:
        admin = agent.admin()
        platform = admin.platform_token()
        ConsulRegistry(agent.address, token=platform.secret_id).kv_put(
            QUOTA_POLICY_KEY, json.dumps(POLICY)
        )
        # Finance reads the policy and reports its usage with its own token.
        registry = ConsulRegistry(agent.address, token=admin.department_token("finance").secret_id)
        policy = consul_quota_policy(registry)
        usage = MeteringStage("finance")
        access = AccessPolicy([Intention("*", "finance", "allow")], MethodRules({}))
        server = Server(
            identity_source=dev_ca_identity(CA, "finance"),
            authorization=("finance", lambda: access),
            metering=usage,
            quotas=QuotaStage("finance", policy, lambda: 1),
        )
        server.add_service(
            finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
            finance_pb2_grpc.add_PaymentServiceServicer_to_server,
            CountingPayments(),
        )
        address = f"127.0.0.1:{server.start('127.0.0.1:0')}"
        reporter = UsageReporter(registry, usage, "finance-1", interval_seconds=0.2)
        try:
            with channel_as("reimbursement", address) as channel:
                payout(channel)
                payout(channel)
                with pytest.raises(grpc.RpcError):
                    payout(channel)
            with channel_as("hr", address) as channel:
                payout(channel)
        finally:
            reporter.stop()
            server.stop(0)
            policy.stop()
        token = platform.write_file(tmp_path / "platform.token")
        argv = ["quota", "--consul-address", agent.address, "--consul-token-file", str(token)]
        assert main(argv) == 0

    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert ["critical", "0.001", "2", "8", "enforce"] in lines
    assert ["standard", "(default)", "5", "10", "4", "shadow"] in lines
    assert ["finance", "reimbursement", "*", "critical"] in lines
    usage = {(line[1], line[2]): line[3:7] for line in lines if len(line) == 11}
    payout_path = "/deptmesh.finance.v1.PaymentService/Payout"
    # calls, throttled, shadow-throttled, errors
    assert usage[("reimbursement", payout_path)] == ["3", "1", "0", "0"]
    assert usage[("hr", payout_path)] == ["1", "0", "0", "0"]


def test_quota_command_with_the_monitoring_token_is_refused(
    consul_agent, monitoring_token, capsys, monkeypatch
):
    """Monitoring's token may not read the policy documents: one line says what Consul
    refused, and the token (from $CONSUL_HTTP_TOKEN) is nowhere in the output."""
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", monitoring_token.secret_id)
    monkeypatch.delenv("CONSUL_HTTP_TOKEN_FILE", raising=False)
    assert main(["quota", "--consul-address", consul_agent.address]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "deptmesh quota: consul refused reading deptmesh/policy/quotas: Permission denied"
        " (the token does not allow it)"
    ]
    assert monitoring_token.secret_id not in out + err


def test_quota_command_without_consul_is_a_clear_error(capsys):
    assert main(["quota", "--consul-address", "127.0.0.1:1"]) == 1
    assert "consul" in capsys.readouterr().err
