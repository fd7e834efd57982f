"""The host keeps its department registered: an agent that forgot the instance gets it back.

(The cluster tests kill a host's agent and bring it back without its state; here the
agent forgets one instance while running, which is quicker to arrange.)
"""

from __future__ import annotations

import dataclasses
import threading

from structlog.testing import capture_logs

from deptmesh.services.hr.app import HR
from deptmesh.sidecar.host import Mesh, parse_options, start_department
from tests.integration.servers import wait_for


def keeper_running(instance_id: str) -> bool:
    return any(thread.name == f"keep-{instance_id}" for thread in threading.enumerate())


def test_an_instance_the_agent_forgot_is_registered_again_until_it_leaves(department, tmp_path):
    """hr hosted on Consul (with hr's token): deregistered behind its back, it is registered
    again within a few seconds and says so; once drained it stays gone."""
    registry = department("hr")
    options = parse_options(
        HR, ["--db", str(tmp_path / "hr.db"), "--drain-seconds", "0", "--grace-seconds", "0"]
    )
    hosted = start_department(
        HR, dataclasses.replace(options, metrics_port=None), Mesh(registry=registry)
    )
    instance_id = hosted.instance.instance_id
    try:
        assert registry.holds(instance_id)
        with capture_logs() as logs:
            registry.deregister(instance_id)  # what an agent restarted without its state knows
            wait_for(lambda: registry.holds(instance_id), 5, "registered again")
            wait_for(lambda: hosted.address in {i.endpoint for i in registry.resolve("hr")})
        [again] = [e for e in logs if e["event"] == "registered_again"]
        assert again["instance"] == instance_id
    finally:
        hosted.drain()
    wait_for(lambda: not keeper_running(instance_id), 5, "the keeper stopped")
    assert not registry.holds(instance_id)
