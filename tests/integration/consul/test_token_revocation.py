"""Revoked tokens, on a Consul agent of this module's own (the session's tokens stay whole).

A watch that Consul starts refusing logs it once, keeps its last good value and
asks again rarely; a department whose token is revoked keeps serving on the
leaf it has and says so, and cannot start again with that token.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.documents import ConsulDocument
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from tests.integration.servers import run_service_until_exit, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def agent() -> Iterator[DevAgent]:
    with DevAgent() as agent:
        yield agent


class CountingRegistry(ConsulRegistry):
    """A real registry that counts the KV reads made through it."""

    reads = 0

    def kv_value(self, key: str, index: int, wait_seconds: float) -> tuple[int, str | None]:
        self.reads += 1
        return super().kv_value(key, index, wait_seconds)


def test_a_refused_watch_logs_once_keeps_its_value_and_does_not_spin(agent):
    """Its token revoked, a KV watch logs `registry_refused` once, keeps the last good
    value, asks at most twice in the seconds that follow, and resumes (saying so) once
    the token is restored."""
    admin = agent.admin()
    platform = ConsulRegistry(agent.address, token=admin.platform_token().secret_id)
    key = "deptmesh/policy/test/revocation"
    platform.kv_put(key, "first")
    token = admin.department_token("watcher")
    registry = CountingRegistry(agent.address, token=token.secret_id)
    with capture_logs() as logs:
        document = ConsulDocument(registry, key, str, absent="", name="doc", wait_seconds=1)
        try:
            assert document() == "first"
            admin.revoke(token)
            wait_for(lambda: any(e["event"] == "registry_refused" for e in logs), 5)
            reads_when_refused = registry.reads
            admin.department_token("watcher", secret_id=token.secret_id)  # restored
            wait_for(lambda: any(e["event"] == "registry_access_restored" for e in logs), 15)
            assert registry.reads - reads_when_refused <= 2
            assert document() == "first"
            platform.kv_put(key, "second")
            wait_for(lambda: document() == "second", 5, "the change after the restore")
        finally:
            document.stop()
    refusals = [e for e in logs if e["event"] == "registry_refused"]
    assert len(refusals) == 1
    assert refusals[0]["error"] == (
        f"consul refused reading {key}: ACL not found (the token is unknown or was revoked)"
    )
    assert token.secret_id not in json.dumps(logs, default=str)


def test_a_revoked_department_serves_on_its_leaf_and_cannot_start_again(agent, tmp_path):
    """Finance's token revoked while it runs: it keeps serving on its current leaf (a new
    connection is served too) and logs that once, with the leaf's expiry; each of its
    watches logs the refusal once; a second finance with that token does not start
    (exit 1, one line, ACL not found) and registers nothing; the token is in no log."""
    admin = agent.admin()
    tokens = admin.mesh_tokens(["finance", "revocation-caller"])
    ConsulRegistry(agent.address, token=tokens.platform.secret_id).set_intention(
        "revocation-caller", "finance", "allow"
    )
    monitoring = ConsulRegistry(agent.address, token=tokens.monitoring.secret_id)
    finance_token = tokens.department("finance").write_file(tmp_path / "finance.token")
    flags = [
        *("--db", str(tmp_path / "finance.db"), "--seed-demo-data", "--drain-seconds", "0"),
        *("--consul-address", agent.address, "--consul-token-file", str(finance_token)),
    ]
    caller = ConsulRegistry(agent.address, token=tokens.department("revocation-caller").secret_id)
    identity = ConsulConnectIdentity(caller, "revocation-caller")
    cache = EndpointCache(caller)
    finance = DepartmentProcess("deptmesh.services.finance", flags, tmp_path / "finance.log")
    try:
        address = finance.start()
        wait_for(lambda: monitoring.resolve("finance"), what="finance passing")

        def budget_read(channel) -> None:
            finance_pb2_grpc.BudgetServiceStub(channel).GetBudget(
                finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG"), timeout=5
            )

        with client.connect("finance", cache, identity=identity) as channel:
            budget_read(channel)
            admin.revoke(tokens.department("finance"))
            # Its leaf watch asks again within one wait (10 s), refused twice it logs.
            wait_for(lambda: "connect_leaf_refused" in finance.log(), 20, "the refusal logged")
            for _ in range(20):
                budget_read(channel)
        with client.connect("finance", cache, identity=identity) as fresh:
            budget_read(fresh)  # a new handshake, on the leaf it still has

        second = run_service_until_exit("finance", *flags)
        assert second.returncode == 1
        [line] = second.stderr.splitlines()
        assert json.loads(line)["event"] == "consul_refused"
        assert json.loads(line)["error"] == (
            "consul refused the Connect leaf of finance: ACL not found"
            " (the token is unknown or was revoked)"
        )
        assert [i.endpoint for i in monitoring.services() if i.service == "finance"] == [address]
    finally:
        assert finance.stop() == 0
        cache.close()
        identity.stop()
    events = [json.loads(line) for line in finance.log().splitlines() if line.startswith("{")]
    [leaf] = [e for e in events if e["event"] == "connect_leaf_refused"]
    assert leaf["serving"] == "on the current leaf until it expires; it will not be renewed"
    assert leaf["valid_until"] != "unknown"
    watches = Counter(e["watching"] for e in events if e["event"] == "registry_refused")
    assert watches, "no watch logged the refusal"
    assert max(watches.values()) == 1, watches
    assert tokens.department("finance").secret_id not in finance.log()
