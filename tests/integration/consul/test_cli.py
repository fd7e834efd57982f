"""`deptmesh services` against a real Consul agent."""

from __future__ import annotations

from deptmesh.sidecar.cli.command import main
from tests.integration.servers import wait_for


class TestServicesCommand:
    def test_lists_instances_with_health_and_contract(self, replicas, capsys):
        """Each registered instance is listed with its address, health and contract version."""
        instance = replicas.add()
        wait_for(lambda: instance.endpoint in replicas.healthy(), what="passing")
        address = replicas.registry.address
        assert main(["services", "--consul-address", address]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["SERVICE", "INSTANCE", "ADDRESS", "HEALTH", "CONTRACT"]
        row = next(line.split() for line in lines if instance.instance_id in line)
        assert row == [
            replicas.service,
            instance.instance_id,
            instance.endpoint,
            "passing",
            "v1",
        ]

    def test_unreachable_consul_is_a_clear_error(self, capsys):
        """With no agent at the address the command fails with a message, not a traceback."""
        assert main(["services", "--consul-address", "127.0.0.1:1"]) == 1
        assert "consul" in capsys.readouterr().err
