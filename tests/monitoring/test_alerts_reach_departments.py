"""The whole path, on real components: Consul, hr as a real process, Prometheus finding
it through Consul, the generated rules, Alertmanager routing by department, and a
webhook receiver of the test's own. A caller flooding hr past its tier's threshold
is alerted on, to hr's and to its own department, and resolved when it stops; a
caller within its threshold never is.

Test-only rule parameters: a 5 s rate window, 2 s `for`, one scrape and one
evaluation a second, and Alertmanager grouping at once.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.acl import MeshTokens
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services import intentions
from deptmesh.services.company_policy import company_policy
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.cli import main
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from deptmesh.sidecar.monitoring import (
    MonitoringPrograms,
    PrometheusSetup,
    RuleTiming,
    alertmanager_argv,
    alertmanager_config,
    prometheus_argv,
    prometheus_config,
    prometheus_rules,
    render,
    wait_until_ready,
)
from deptmesh.sidecar.policy_document.monitoring import MonitoringPolicy
from tests.integration.servers import wait_for
from tests.monitoring.prometheus_programs import ProgramProcess, PrometheusPrograms
from tests.monitoring.webhook_receiver import Notification, WebhookReceiver

pytestmark = pytest.mark.timeout(120)

ALERT = "DeptmeshCallerTrafficAboveThreshold"
FLOODER, NEIGHBOUR = "travel", "reimbursement"
# Both callers' tiers on hr are alerted on above 10 calls a second in this test.
TEST_POLICY = MonitoringPolicy(traffic_thresholds={"standard": 10, "critical": 10})
TEST_TIMING = RuleTiming(rate_window="5s", traffic_for="2s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclasses.dataclass(frozen=True)
class Monitoring:
    prometheus: str
    alertmanager: str

    def query(self, expression: str) -> list[dict[str, Any]]:
        """Prometheus's instant vector for `expression`."""
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
        return result


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[tuple[DevAgent, MeshTokens]]:
    """Consul with the company's intentions, and hr serving metrics, registered."""
    with DevAgent() as agent:
        tokens = agent.admin().mesh_tokens(["hr", FLOODER, NEIGHBOUR])
        intentions.apply(ConsulRegistry(agent.address, token=tokens.platform.secret_id))
        token = tokens.department("hr").write_file(tmp_path / "hr.token")
        hr = DepartmentProcess(
            "deptmesh.services.hr",
            [
                *("--port", "0", "--metrics-port", "0", "--db", str(tmp_path / "hr.db")),
                "--seed-demo-data",
                *("--consul-address", agent.address, "--consul-token-file", str(token)),
                *("--trace-store", str(tmp_path / "traces.sqlite")),
            ],
            tmp_path / "hr.log",
        )
        hr.start()
        try:
            yield agent, tokens
        finally:
            hr.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def monitoring(
    mesh: tuple[DevAgent, MeshTokens],
    receiver: WebhookReceiver,
    prometheus_programs: PrometheusPrograms,
    tmp_path: Path,
) -> Iterator[Monitoring]:
    """Prometheus and Alertmanager configured as generated, with the test's timings."""
    agent, tokens = mesh
    programs = MonitoringPrograms(prometheus_programs.directory)
    document = dataclasses.replace(company_policy(), monitoring=TEST_POLICY)
    rules = tmp_path / "rules.json"
    rules.write_text(render(prometheus_rules(document, timing=TEST_TIMING)))
    alertmanager_port, prometheus_port = _free_port(), _free_port()
    am_config = tmp_path / "alertmanager.json"
    am_config.write_text(
        render(
            alertmanager_config(
                document.departments,
                receiver.url,
                group_wait="1s",
                group_interval="1s",
                repeat_interval="1h",
            )
        )
    )
    setup = PrometheusSetup(
        agent.address,
        tokens.monitoring.secret_id,
        rule_files=[rules],
        alertmanagers=[f"127.0.0.1:{alertmanager_port}"],
        scrape_interval="1s",
        evaluation_interval="1s",
        refresh_interval="1s",
    )
    config = tmp_path / "prometheus.json"
    config.write_text(render(prometheus_config(setup)))
    children = [
        ProgramProcess(
            alertmanager_argv(programs, am_config, tmp_path / "am-data", alertmanager_port),
            tmp_path / "alertmanager.log",
        ),
        ProgramProcess(
            prometheus_argv(programs, config, tmp_path / "prom-data", prometheus_port),
            tmp_path / "prometheus.log",
        ),
    ]
    try:
        wait_until_ready(f"http://127.0.0.1:{alertmanager_port}", 30)
        wait_until_ready(f"http://127.0.0.1:{prometheus_port}", 30)
        yield Monitoring(
            f"http://127.0.0.1:{prometheus_port}", f"http://127.0.0.1:{alertmanager_port}"
        )
    finally:
        for child in children:
            child.stop()


class _Calls:
    """Calls hr's GetEmployee as `caller` on a thread until stopped; `pause` between calls."""

    def __init__(self, agent: DevAgent, tokens: MeshTokens, caller: str, pause: float) -> None:
        registry = ConsulRegistry(agent.address, token=tokens.department(caller).secret_id)
        self._identity = ConsulConnectIdentity(registry, caller, wait_seconds=5)
        self._cache = EndpointCache(registry)
        self._channel = client.connect("hr", self._cache, identity=self._identity)
        self._stub = hr_pb2_grpc.EmployeeServiceStub(self._channel)
        self._stop = threading.Event()
        self._pause = pause
        self.calls = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        request = hr_pb2.GetEmployeeRequest(employee_id="E1002")
        while not self._stop.wait(self._pause):
            try:
                self._stub.GetEmployee(request, timeout=5)
                self.calls += 1
            except grpc.RpcError:
                pass  # the rate counts every call, answered or not

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._channel.close()
        self._cache.close()
        self._identity.stop()


def _about(caller: str, status: str, path: str) -> Callable[[Notification], bool]:
    """A notification of the traffic alert about `caller`, in `status`, sent to `path`."""

    def matches(notification: Notification) -> bool:
        labels = notification.labels
        return (
            labels.get("alertname") == ALERT
            and labels.get("caller") == caller
            and notification.status == status
            and notification.path == path
        )

    return matches


class TestTrafficAlert:
    def test_a_flooding_caller_is_alerted_on_and_resolved(
        self,
        mesh: tuple[DevAgent, MeshTokens],
        monitoring: Monitoring,
        receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """travel's flood past its threshold reaches hr's and travel's receivers, labelled
        with both, then resolves once it stops; reimbursement, calling steadily below its
        threshold, is never alerted on; `deptmesh alerts` lists the alert with its runbook."""
        agent, tokens = mesh
        neighbour = _Calls(agent, tokens, NEIGHBOUR, pause=0.5)
        flood = _Calls(agent, tokens, FLOODER, pause=0.0)
        try:
            # The callee's owners and the caller's: hr's receiver and travel's.
            fired = [
                *receiver.wait_for(_about(FLOODER, "firing", "/hr"), 40, f"{ALERT} to hr"),
                *receiver.wait_for(
                    _about(FLOODER, "firing", f"/{FLOODER}"), 10, f"{ALERT} to {FLOODER}"
                ),
            ]
            assert main(["alerts", "--alertmanager", monitoring.alertmanager]) == 0
            listed = capsys.readouterr().out
        finally:
            flood.stop()
        assert ALERT in listed
        assert f"caller={FLOODER}" in listed
        assert "runbook:" in listed
        for notification in fired:
            labels = notification.labels
            assert (labels["service"], labels["department"]) == ("hr", "hr")
            assert (labels["kind"], labels["tier"]) == ("traffic", "standard")
        for path in ("/hr", f"/{FLOODER}"):
            receiver.wait_for(_about(FLOODER, "resolved", path), 40, f"{ALERT} resolved at {path}")
        neighbour.stop()
        assert neighbour.calls > 0
        assert not [n for n in receiver.notifications if n.labels.get("caller") == NEIGHBOUR]

    def test_hr_is_a_healthy_target_found_through_consul(self, monitoring: Monitoring) -> None:
        """Prometheus finds hr through Consul with no target configured, scrapes it, and
        reads its leaf's expiry (a day or more ahead) and its trace store's bound."""
        [up] = wait_for(
            lambda: monitoring.query('up{job="deptmesh", department="hr"} == 1'),
            30,
            "hr scraped",
        )
        assert up["metric"]["consul_instance"].startswith("hr-")
        [leaf] = wait_for(
            lambda: monitoring.query("deptmesh_connect_leaf_expiry_timestamp_seconds"),
            30,
            "hr's leaf expiry",
        )
        assert leaf["metric"]["department"] == "hr"
        assert float(leaf["value"][1]) > time.time() + 86400
        [capacity] = monitoring.query("deptmesh_trace_store_capacity_spans")
        assert float(capacity["value"][1]) > 0
