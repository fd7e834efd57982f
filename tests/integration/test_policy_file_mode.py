"""No-Consul mode: an access policy file enforced by real servers, changed while they run."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import grpc
import pytest
from structlog.testing import capture_logs

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.agent import terminate
from deptmesh.registry.children import start_child
from deptmesh.services import intentions
from deptmesh.sidecar import Server
from deptmesh.sidecar.authorization.sources import FileAccessPolicy
from deptmesh.sidecar.identity.sources import dev_ca_identity
from tests.aio_servers import AioServerThread
from tests.integration.servers import run_service_until_exit, wait_for
from tests.security.mtls import (
    CA,
    PAYOUT,
    AsyncCountingPayments,
    CountingPayments,
    channel_as,
    error_info,
    payout,
)

_SERVING = re.compile(r"^hr serving on (127\.0\.0\.1:\d+)$")
GET_EMPLOYEE = "/deptmesh.hr.v1.EmployeeService/GetEmployee"


def allow(source: str, destination: str) -> dict[str, str]:
    return {"source": source, "destination": destination, "action": "allow"}


def write(path, document) -> None:
    path.write_text(document if isinstance(document, str) else json.dumps(document))


def outcome(call) -> grpc.StatusCode:
    """The status code a call ends with."""
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture(params=["sync", "aio"])
def finance(request, tmp_path):
    """Finance on mTLS (dev CA) enforcing a policy file: reimbursement and hr may call
    finance, and only reimbursement may pay. Yields (handler, address, policy file)."""
    path = tmp_path / "policy.json"
    write(
        path,
        {
            "intentions": [allow("reimbursement", "finance"), allow("hr", "finance")],
            "methods": {PAYOUT: ["reimbursement"]},
        },
    )
    aio = request.param == "aio"
    handler = AsyncCountingPayments() if aio else CountingPayments()
    server = (AioServerThread if aio else Server)(
        identity_source=dev_ca_identity(CA, "finance"),
        authorization=("finance", FileAccessPolicy(path)),
    )
    server.add_service(
        finance_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        finance_pb2_grpc.add_PaymentServiceServicer_to_server,
        handler,
    )
    port = server.start("127.0.0.1:0")
    yield handler, f"127.0.0.1:{port}", path
    server.stop(0)


class TestPolicyFileOnMtls:
    def test_allowed_caller_reaches_the_handler(self, finance):
        """The caller the file's method rule names may pay."""
        handler, address, _ = finance
        with channel_as("reimbursement", address) as channel:
            payout(channel)
        assert handler.calls == 1

    def test_denied_caller_is_told_the_rule(self, finance):
        """hr -> Payout is PERMISSION_DENIED with an ErrorInfo naming the file's method rule."""
        handler, address, _ = finance
        with channel_as("hr", address) as channel, pytest.raises(grpc.RpcError) as caught:
            payout(channel)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        info = error_info(caught.value)
        assert info.reason == "ACCESS_DENIED"
        assert info.metadata["caller"] == CA.spiffe_id("hr").uri
        assert info.metadata["rule"] == f"method rule {PAYOUT} allows only ['reimbursement']"
        assert handler.calls == 0

    def test_file_changes_apply_without_restart(self, finance):
        """On one open connection: a bad rewrite is rejected and changes nothing, then a
        valid rewrite that denies reimbursement applies to its next calls."""
        handler, address, path = finance
        with channel_as("reimbursement", address) as channel:
            payout(channel)
            with capture_logs() as logs:
                write(path, '{"intentions": [], "methods": {}, "typo": 1}')
                # Every call lets the server look at the file again (at most once a second).
                wait_for(
                    lambda: (
                        outcome(lambda: payout(channel)) is grpc.StatusCode.OK
                        and any(entry["event"] == "access_policy_rejected" for entry in logs)
                    ),
                    what="the bad rewrite to be rejected",
                )
            rejected = [entry for entry in logs if entry["event"] == "access_policy_rejected"]
            assert "unknown keys ['typo']" in rejected[0]["reason"]
            payout(channel)  # the last good policy is still in force

            write(path, {"intentions": [allow("hr", "finance")], "methods": {}})
            wait_for(
                lambda: outcome(lambda: payout(channel)) is grpc.StatusCode.PERMISSION_DENIED,
                what="the revocation to apply",
            )
            with pytest.raises(grpc.RpcError) as caught:
                payout(channel)
        assert (
            "no intention allows reimbursement -> finance"
            in error_info(caught.value).metadata["rule"]
        )
        calls = handler.calls
        with channel_as("hr", address) as channel:
            payout(channel)  # hr's Payout is no longer ruled out
        assert handler.calls == calls + 1


class TestServiceWithPolicyFile:
    """`python -m deptmesh.services.hr --policy-file PATH`: plaintext, callers anonymous."""

    def test_policy_file_is_enforced_and_followed(self, tmp_path):
        """The company policy denies the anonymous caller; allowing anonymous -> hr in the
        file lets the next call through with no restart."""
        path = tmp_path / "policy.json"
        intentions.write_policy_file(path)
        process = start_child(
            [
                *(sys.executable, "-m", "deptmesh.services.hr", "--port", "0", "--seed-demo-data"),
                *("--db", str(tmp_path / "hr.db"), "--policy-file", str(path)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline().strip()
            match = _SERVING.match(line)
            assert match, f"unexpected first line {line!r}"
            with grpc.insecure_channel(match[1]) as channel:
                stub = hr_pb2_grpc.EmployeeServiceStub(channel)

                def get():
                    return stub.GetEmployee(
                        hr_pb2.GetEmployeeRequest(employee_id="E1000"), timeout=5
                    )

                with pytest.raises(grpc.RpcError) as caught:
                    get()
                assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
                info = error_info(caught.value)
                assert info.metadata["rule"] == "no intention allows anonymous -> hr (default deny)"
                assert info.metadata["target"] == "hr" + GET_EMPLOYEE

                intentions.write_policy_file(path, ("anonymous", "hr", "allow"))
                wait_for(lambda: outcome(get) is grpc.StatusCode.OK, what="anonymous allowed")
                assert get().employee.display_name == "Ada Lovelace"
            assert terminate(process, 15) == 0
        finally:
            if process.poll() is None:
                process.kill()
            _, stderr = process.communicate(timeout=10)
        # The service's own log lines are JSON; grpc's native logging may add others.
        events = [json.loads(line)["event"] for line in stderr.splitlines() if line[:1] == "{"]
        assert events.count("access_policy_applied") == 2
        assert "access_policy_for_anonymous_callers" in events

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ('{"intentions": [], "methods": {}, "quota": {}}', "unknown keys ['quota']"),
            (None, "No such file or directory"),
        ],
        ids=["invalid", "missing"],
    )
    def test_bad_policy_file_stops_the_service_at_start(self, tmp_path, content, message):
        """A policy file that is missing or does not validate is a usage error naming it."""
        path = tmp_path / "policy.json"
        if content is not None:
            write(path, content)
        result = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--policy-file", str(path)
        )
        assert result.returncode == 2
        assert "--policy-file" in result.stderr
        assert str(path) in result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""

    def test_policy_file_with_consul_is_refused(self, tmp_path):
        """With a Consul address the policy comes from Consul: a policy file is refused."""
        path = tmp_path / "policy.json"
        intentions.write_policy_file(path)
        result = run_service_until_exit(
            "hr",
            *("--db", str(tmp_path / "hr.db"), "--policy-file", str(path)),
            *("--consul-address", "127.0.0.1:1"),
        )
        assert result.returncode == 2
        assert "--policy-file is for running without Consul" in result.stderr
