"""A department registered in Consul that fails to start leaves nothing registered."""

from __future__ import annotations

import json
import socket

import pytest

from tests.integration.consul.conftest import token_file
from tests.integration.servers import run_service_until_exit


@pytest.mark.parametrize("flag", ["--port", "--metrics-port"])
def test_port_in_use_registers_nothing(tmp_path, consul_agent, department_tokens, monitoring, flag):
    """hr with Consul, its port (or metrics port) taken: one line naming the flag, exit 1,
    and Consul holds no more hr instances than before."""
    before = {i.instance_id for i in monitoring.services() if i.service == "hr"}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        result = run_service_until_exit(
            "hr",
            *("--db", str(tmp_path / "hr.db"), flag, str(taken)),
            *("--consul-address", consul_agent.address),
            *("--consul-token-file", str(token_file(department_tokens("hr"), tmp_path))),
        )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert json.loads(line)["error"].startswith(f"{flag} {taken} is in use by another process")
    assert {i.instance_id for i in monitoring.services() if i.service == "hr"} == before
