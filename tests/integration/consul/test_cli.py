"""`deptmesh services` against a real Consul agent."""

from __future__ import annotations

from deptmesh.sidecar.cli.command import main
from tests.integration.consul.conftest import token_file
from tests.integration.servers import wait_for


class TestServicesCommand:
    def test_lists_instances_with_health_and_contract(
        self, replicas, monitoring_token, tmp_path, capsys
    ):
        """Each registered instance is listed with its address, health and contract version,
        asked with the monitoring token from --consul-token-file."""
        instance = replicas.add()
        wait_for(lambda: instance.endpoint in replicas.healthy(), what="passing")
        address = replicas.registry.address
        token = token_file(monitoring_token, tmp_path)
        assert (
            main(["services", "--consul-address", address, "--consul-token-file", str(token)]) == 0
        )
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

    def test_without_a_token_it_says_why_nothing_is_listed(self, replicas, capsys, monkeypatch):
        """Anonymous, Consul lists nothing: the command says a token is missing."""
        monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
        monkeypatch.delenv("CONSUL_HTTP_TOKEN_FILE", raising=False)
        instance = replicas.add()
        wait_for(lambda: instance.endpoint in replicas.healthy(), what="passing")
        assert main(["services", "--consul-address", replicas.registry.address]) == 0
        out, err = capsys.readouterr()
        assert instance.instance_id not in out
        assert "no Consul token was given" in err

    def test_an_unreadable_token_file_is_one_line(self, consul_agent, tmp_path, capsys):
        """A token file that cannot be read: exit 1 and one line naming the file."""
        missing = tmp_path / "nope.token"
        argv = ["services", "--consul-address", consul_agent.address]
        assert main([*argv, "--consul-token-file", str(missing)]) == 1
        [line] = capsys.readouterr().err.splitlines()
        assert str(missing) in line

    def test_unreachable_consul_is_a_clear_error(self, capsys):
        """With no agent at the address the command fails with a message, not a traceback."""
        assert main(["services", "--consul-address", "127.0.0.1:1"]) == 1
        assert "consul" in capsys.readouterr().err
