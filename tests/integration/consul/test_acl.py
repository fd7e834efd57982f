"""Consul's ACLs, default deny, on a real agent: each token does its own things and nothing
else, and a department process refused by Consul does not start, in one clear line."""

from __future__ import annotations

import json
import uuid

import pytest

from deptmesh.registry.acl import PLATFORM_IDENTITY
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryRefused
from deptmesh.sidecar.host import DepartmentProcess, instance_of
from tests.integration.consul.conftest import token_file
from tests.integration.servers import run_service_until_exit, serve_employee_service, wait_for
from tests.integration.test_deadlines import RecordingHr

POLICY_KEY = "deptmesh/policy/method-rules"


def refused(action, *args) -> str:
    """The message of the RegistryRefused `action(*args)` raises."""
    with pytest.raises(RegistryRefused) as caught:
        action(*args)
    return str(caught.value)


@pytest.fixture(autouse=True)
def mesh_wide_state_put_back(platform, department):
    """These tests write the session agent's mesh-wide method rules, intentions and usage
    keys; each is put back as it was after the test, so that no other test sees them."""
    _, rules = platform.kv_value(POLICY_KEY, 0, 0)
    _, intentions = platform.intentions(0, 0)
    before = {(i["SourceName"], i["DestinationName"]): i["Action"] for i in intentions}
    yield
    if rules is None:
        platform.kv_delete(POLICY_KEY)
    else:
        platform.kv_put(POLICY_KEY, rules)
    _, intentions = platform.intentions(0, 0)
    for intention in intentions:
        pair = (intention["SourceName"], intention["DestinationName"])
        if pair not in before:
            platform.delete_intention(intention["ID"])
        elif intention["Action"] != before[pair]:
            platform.set_intention(*pair, before[pair])
    department("hr").kv_delete("deptmesh/usage/hr/hr-test")
    department("finance").kv_delete("deptmesh/usage/finance/finance-acl")


@pytest.fixture
def hr_instance():
    """A serving hr instance nobody registered yet."""
    server, address = serve_employee_service(RecordingHr())
    yield instance_of("hr", "127.0.0.1", int(address.rpartition(":")[2]))
    server.stop(0)


@pytest.fixture
def anonymous(consul_agent, monkeypatch) -> ConsulRegistry:
    """A registry with no token at all (none in the environment either)."""
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("CONSUL_HTTP_TOKEN_FILE", raising=False)
    return ConsulRegistry(consul_agent.address)


class TestDepartmentToken:
    def test_obtains_its_own_leaf_and_no_other(self, department, department_tokens):
        """hr's token gets hr's Connect leaf; asking for reimbursement's is refused, and the
        refusal names what was asked, never the token."""
        hr = department("hr")
        _, leaf = hr.connect_leaf("hr", 0, 0)
        assert leaf["ServiceURI"].endswith("/svc/hr")
        message = refused(hr.connect_leaf, "reimbursement", 0, 0)
        assert message == (
            "consul refused the Connect leaf of reimbursement: Permission denied"
            " (the token does not allow it)"
        )
        assert department_tokens("hr").secret_id not in message

    def test_registers_as_itself_only(self, department, hr_instance):
        """hr's token registers and deregisters hr's instances, never one of finance."""
        hr = department("hr")
        hr.register(hr_instance)
        assert hr.holds(hr_instance.instance_id)
        hr.deregister(hr_instance.instance_id)
        as_finance = instance_of("finance", "127.0.0.1", hr_instance.port)
        message = refused(hr.register, as_finance)
        assert message.startswith(f"consul refused registering {as_finance.instance_id} as")
        assert "Missing service:write on finance" in message

    def test_reads_the_policy_and_cannot_write_it(self, department, platform):
        """hr reads the intentions and the KV policy it enforces; writing either is refused."""
        platform.set_intention("reimbursement", "hr", "allow")
        platform.kv_put(POLICY_KEY, json.dumps({"methods": {}}))
        hr = department("hr")
        _, intentions = hr.intentions(0, 0)
        assert ("reimbursement", "hr") in {
            (i["SourceName"], i["DestinationName"]) for i in intentions
        }
        assert hr.kv_value(POLICY_KEY, 0, 0)[1] == json.dumps({"methods": {}})
        assert "writing the intention hr -> finance" in refused(
            hr.set_intention, "hr", "finance", "allow"
        )
        assert "writing the intention hr -> hr" in refused(hr.set_intention, "hr", "hr", "allow")
        assert f"writing {POLICY_KEY}" in refused(hr.kv_put, POLICY_KEY, "{}")

    def test_writes_its_own_usage_only(self, department):
        """hr writes under deptmesh/usage/hr/, never under another department's prefix."""
        hr = department("hr")
        hr.kv_put("deptmesh/usage/hr/hr-test", "{}")
        assert "writing deptmesh/usage/finance/x" in refused(
            hr.kv_put, "deptmesh/usage/finance/x", "{}"
        )
        assert "writing deptmesh/usage/hr-x/y" in refused(hr.kv_put, "deptmesh/usage/hr-x/y", "{}")


class TestPlatformToken:
    def test_writes_policy_reads_usage_and_is_no_department(
        self, platform, department, hr_instance
    ):
        """The platform writes intentions and policy documents and reads usage; it obtains no
        department's leaf, registers no department and, unless given the rotation policy,
        leaves the CA alone."""
        platform.set_intention("self-service", "travel", "allow")
        platform.kv_put(POLICY_KEY, json.dumps({"methods": {}}))
        department("finance").kv_put("deptmesh/usage/finance/finance-acl", '{"usage": []}')
        assert platform.kv_values("deptmesh/usage/finance/")["deptmesh/usage/finance/finance-acl"]
        assert "the Connect leaf of hr" in refused(platform.connect_leaf, "hr", 0, 0)
        assert "the Connect leaf of metering" in refused(platform.connect_leaf, "metering", 0, 0)
        assert "registering" in refused(platform.register, hr_instance)
        assert "the Connect CA configuration" in refused(platform.rotate_connect_ca, "key")

    def test_obtains_the_platform_leaf(self, platform, department):
        """The platform's token gets the leaf of its mesh identity `platform`, which the
        usage ledger lets read every department's usage; a department's token does not."""
        _, leaf = platform.connect_leaf(PLATFORM_IDENTITY, 0, 0)
        assert leaf["ServiceURI"].endswith(f"/svc/{PLATFORM_IDENTITY}")
        assert "the Connect leaf of platform" in refused(
            department("hr").connect_leaf, PLATFORM_IDENTITY, 0, 0
        )


class TestMonitoringToken:
    def test_reads_the_catalog_and_nothing_else(
        self, consul_agent, monitoring_token, department, hr_instance
    ):
        """Prometheus's token lists instances and their health; it reads no KV and no
        intentions, obtains no leaf and registers nothing."""
        department("hr").register(hr_instance)
        try:
            monitoring = ConsulRegistry(consul_agent.address, token=monitoring_token.secret_id)
            wait_for(
                lambda: hr_instance.instance_id in {i.instance_id for i in monitoring.services()},
                what="hr listed",
            )
            assert monitoring.intentions(0, 0)[1] == []
            assert "reading deptmesh/policy/" in refused(monitoring.kv_value, POLICY_KEY, 0, 0)
            assert "the Connect leaf of hr" in refused(monitoring.connect_leaf, "hr", 0, 0)
            assert "registering" in refused(monitoring.register, hr_instance)
        finally:
            department("hr").deregister(hr_instance.instance_id)


class TestAnonymous:
    def test_gets_nothing(self, anonymous, department, platform, hr_instance):
        """Without a token: no leaf, no registration, no KV read or write, and the catalog
        and intentions look empty even though they are not."""
        department("hr").register(hr_instance)
        platform.set_intention("reimbursement", "hr", "allow")
        try:
            assert refused(anonymous.connect_leaf, "hr", 0, 0).endswith(
                "Permission denied (no token was given)"
            )
            assert "registering" in refused(anonymous.register, hr_instance)
            assert "reading" in refused(anonymous.kv_value, POLICY_KEY, 0, 0)
            assert "writing" in refused(anonymous.kv_put, POLICY_KEY, "{}")
            assert anonymous.services() == []
            assert anonymous.resolve("hr") == []
            assert anonymous.intentions(0, 0)[1] == []
        finally:
            department("hr").deregister(hr_instance.instance_id)


class TestRefusedDepartment:
    """A department process whose token Consul refuses logs one line and exits 1."""

    def refusal(self, finished) -> dict:
        assert finished.returncode == 1, finished.stderr
        assert finished.stdout == ""  # never "serving"
        [line] = finished.stderr.splitlines()
        event = json.loads(line)
        assert event["event"] == "consul_refused"
        return event

    def test_another_departments_token_is_refused(
        self, consul_agent, monitoring, department_tokens, tmp_path
    ):
        """finance started with hr's token: refused at its leaf, nothing registered, the
        token nowhere in what it printed."""
        hr_token = department_tokens("hr")
        finished = run_service_until_exit(
            "finance",
            *("--db", str(tmp_path / "finance.db"), "--consul-address", consul_agent.address),
            *("--consul-token-file", str(token_file(hr_token, tmp_path))),
        )
        event = self.refusal(finished)
        assert event["error"] == (
            "consul refused the Connect leaf of finance: Permission denied"
            " (the token does not allow it)"
        )
        assert hr_token.secret_id not in finished.stdout + finished.stderr
        assert [i for i in monitoring.services() if i.service == "finance"] == []

    def test_no_token_is_refused(self, consul_agent, tmp_path, monkeypatch):
        """hr started without any token: one line saying none was given."""
        monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
        monkeypatch.delenv("CONSUL_HTTP_TOKEN_FILE", raising=False)
        finished = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--consul-address", consul_agent.address
        )
        assert self.refusal(finished)["error"].endswith("(no token was given)")

    def test_an_unreadable_token_file_is_a_usage_error(self, consul_agent, tmp_path):
        """A token file that is not there: exit 2 with a usage message naming the file."""
        missing = tmp_path / f"{uuid.uuid4().hex}.token"
        finished = run_service_until_exit(
            "hr",
            *("--db", str(tmp_path / "hr.db"), "--consul-address", consul_agent.address),
            *("--consul-token-file", str(missing)),
        )
        assert finished.returncode == 2
        assert f"the Consul token file {missing} cannot be read" in finished.stderr
        assert "Traceback" not in finished.stderr


class TestTokenFromTheEnvironment:
    def test_a_department_takes_its_token_from_consul_http_token_file(
        self, consul_agent, monitoring, department_tokens, tmp_path
    ):
        """hr with $CONSUL_HTTP_TOKEN_FILE (and a wrong $CONSUL_HTTP_TOKEN, which the file
        beats) registers with a passing check, and leaves on SIGTERM."""
        environ = {
            "CONSUL_HTTP_TOKEN_FILE": str(token_file(department_tokens("hr"), tmp_path)),
            "CONSUL_HTTP_TOKEN": "not-a-token",
        }
        with pytest.MonkeyPatch.context() as patch:
            for name, value in environ.items():
                patch.setenv(name, value)
            hr = DepartmentProcess(
                "deptmesh.services.hr",
                ["--db", str(tmp_path / "hr.db"), "--consul-address", consul_agent.address],
                tmp_path / "hr.log",
            )
            address = hr.start()
        try:
            wait_for(
                lambda: address in {i.endpoint for i in monitoring.resolve("hr")},
                what="hr passing",
            )
        finally:
            assert hr.stop() == 0
        assert address not in {i.endpoint for i in monitoring.resolve("hr")}
