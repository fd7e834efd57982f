"""Faults of a Consul cluster under load: three servers, two hosts' client agents, ACLs.

The mesh, as in production: host-a runs hr and a finance replica, host-b
reimbursement and another finance replica, each department registered through its
own host's agent with its own token. Two callers keep calls going the whole
time: one on host-a calling finance directly, one on host-b calling
reimbursement, which asks hr on host-a. Every test ends with the cluster whole
again (the next one checks), so the module shares one cluster and one mesh.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.cluster import ConsulCluster
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryUnavailable
from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from tests.integration.consul.cluster_mesh import ClusterMesh, Load
from tests.integration.servers import wait_for

pytestmark = pytest.mark.timeout(180)

PLACEMENT = {"host-a": ["hr", "finance"], "host-b": ["reimbursement", "finance"]}
CALLERS = {"host-a": "caller-a", "host-b": "caller-b"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[ClusterMesh]:
    with (
        ConsulCluster(servers=3, hosts=2) as cluster,
        ClusterMesh(
            cluster,
            tmp_path_factory.mktemp("cluster-mesh"),
            PLACEMENT,
            callers=CALLERS.values(),
            allow=[("caller-a", "finance"), ("caller-b", "reimbursement")],
        ) as mesh,
    ):
        yield mesh


@pytest.fixture
def load(mesh) -> Load:
    """caller-a (host-a) reads finance's budgets; caller-b (host-b) files claims with
    reimbursement, which asks hr (host-a) about the employee. Every test starts whole."""
    mesh.cluster.wait_until_whole()
    mesh.wait_until_passing()
    a = mesh.caller("caller-a", mesh.host("host-a"))
    b = mesh.caller("caller-b", mesh.host("host-b"))
    budgets = finance_pb2_grpc.BudgetServiceStub(a.connect("finance"))
    claims = reimbursement_pb2_grpc.ReimbursementServiceStub(b.connect("reimbursement"))
    load = Load(
        {
            "finance": lambda: budgets.GetBudget(
                finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG"), timeout=5
            ),
            "reimbursement->hr": lambda: claims.SubmitClaim(
                reimbursement_pb2.SubmitClaimRequest(
                    employee_id="E1002",
                    amount=money_pb2.Money(currency_code="EUR", units=1),
                    description="load",
                    request_id=uuid.uuid4().hex,
                ),
                timeout=5,
            ),
        }
    )
    load.finance_channel = a  # type: ignore[attr-defined]
    return load


def log_count(process, event: str) -> int:
    """How often a running process has logged `event` so far (its last line may be half
    written, so the JSON is not parsed)."""
    return process.log().count(f'"event": "{event}"')


def new_ca_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def test_sigkill_of_the_leader_fails_no_call_and_the_mesh_follows_the_new_one(mesh, load):
    """The leader SIGKILLed under load: no call fails; once a new leader is elected the
    callers' catalog watches follow a new finance replica, and after a CA rotation every
    department renews its Connect leaf."""
    cluster = mesh.cluster
    processes = [process for _, process in mesh.processes]
    caller_a = mesh.host("host-a")
    with load:
        load.wait_for_calls(50)
        old = cluster.leader()
        old.kill()
        killed_at = time.monotonic()
        new = cluster.wait_for_leader()
        elected_after = time.monotonic() - killed_at
        assert new is not old
        load.wait_for_calls(50)

        # Catalog watches: a replica registered now reaches the callers' channels.
        extra = mesh.start_department(caller_a, "finance")
        balancer = load.finance_channel._channels[0].balancer()  # type: ignore[attr-defined]
        wait_for(
            lambda: balancer.call_counts().get(extra.address, 0) > 0,
            15,
            "calls routed to the replica registered after the election",
        )

        # Leaf renewal: each agent renews every leaf within 30 s of a new root.
        renewed = {process: log_count(process, "connect_leaf_renewed") for process in processes}
        rotating = ConsulRegistry(
            new.address, token=cluster.admin().platform_token(rotate_connect_ca=True).secret_id
        )
        rotating.rotate_connect_ca(new_ca_key())
        wait_for(
            lambda: all(log_count(p, "connect_leaf_renewed") > n for p, n in renewed.items()),
            60,
            "every department on a leaf from the new root",
        )
        load.wait_for_calls(50)
    assert load.failures == [], load.failed()
    assert elected_after < 15
    assert mesh.stop_department(extra) == 0
    old.start()
    cluster.wait_until_whole()


def test_sigkill_of_a_hosts_agent_fails_no_call_and_its_services_come_back(mesh, load):
    """host-b's agent SIGKILLed under load, twice: no call fails. caller-b and
    reimbursement on host-b keep their cached endpoints; caller-a moves off host-b's
    finance once Consul declares host-b failed. Back with its state, the agent restores
    host-b's registrations itself; back without it (a new machine image), the
    departments on host-b register themselves again. Either way their checks pass."""
    host_b = mesh.host("host-b")
    on_b = mesh.on(host_b)
    [finance_b] = [p for p in on_b if p.module.endswith(".finance")]
    balancer = load.finance_channel._channels[0].balancer()  # type: ignore[attr-defined]
    with load:
        load.wait_for_calls(50)
        host_b.kill()
        wait_for(
            lambda: finance_b.address not in mesh.passing("finance"),
            30,
            "Consul to declare host-b's instances failed",
        )
        load.wait_for_calls(100)
        host_b.start()  # with its state: it still holds hr's and finance's registrations
        mesh.wait_until_passing(30)
        wait_for(lambda: finance_b.address in balancer.call_counts(), 15, "caller-a on host-b")
        load.wait_for_calls(50)
        assert [log_count(process, "registered_again") for process in on_b] == [0, 0]

        host_b.kill()
        host_b.forget_state()
        host_b.start()
        wait_for(
            lambda: all(log_count(process, "registered_again") for process in on_b),
            30,
            "host-b's departments registered again",
        )
        mesh.wait_until_passing(30)
        load.wait_for_calls(50)
    assert load.failures == [], load.failed()
    assert [log_count(process, "registered_again") for process in on_b] == [1, 1]


def committed(registry: ConsulRegistry, key: str, value: str) -> bool:
    """Writes `value` at `key`; False when the write timed out (a loaded machine can hold a
    Raft commit past the client's 3 s), so that the caller asks again until its deadline."""
    try:
        registry.kv_put(key, value)
    except RegistryUnavailable:
        return False
    return True


def test_a_server_stopped_for_30_seconds_fails_nothing(mesh, load):
    """A follower stopped for 30 s under load: no call fails and writes still commit (each
    within 15 s); it rejoins when it starts again."""
    cluster = mesh.cluster
    leader = cluster.leader()
    follower = next(server for server in cluster.servers if server is not leader)
    platform = ConsulRegistry(leader.address, token=mesh.platform_secret)
    with load:
        load.wait_for_calls(50)
        follower.stop()
        back_at = time.monotonic() + 30
        while time.monotonic() < back_at:
            assert load.failures == [], load.failed()
            written = datetime.datetime.now().isoformat()
            wait_for(
                lambda value=written: committed(platform, "deptmesh/policy/test/outage", value),
                15,
                "a write committed during the outage",
            )
            load.wait_for_calls(20)
        follower.start()
        cluster.wait_until_whole()
        load.wait_for_calls(50)
    assert load.failures == [], load.failed()
