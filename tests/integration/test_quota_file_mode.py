"""No-Consul mode: a quota policy file enforced by a real service process, changed live."""

from __future__ import annotations

import json

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from tests.integration.servers import ServiceProcessUnderTest, wait_for

# The trailer clients read their remaining quota from: a wire name, pinned here rather
# than imported, so that renaming it fails a test.
REMAINING_KEY = "x-deptmesh-quota-remaining"


def write_policy(path, rate: float, burst: float) -> None:
    tier = {"rate": rate, "burst": burst, "max_in_flight": 4}
    path.write_text(json.dumps({"tiers": {"standard": tier}, "default_tier": "standard"}))


def test_quota_policy_file_is_enforced_and_followed(tmp_path):
    """`--quota-policy-file`: the caller's burst is enforced with the remaining quota in
    the trailers; a new rate in the file applies with no restart."""
    path = tmp_path / "quotas.json"
    write_policy(path, rate=0.001, burst=2)
    arguments = ("--db", str(tmp_path / "hr.db"), "--seed-demo-data")
    with (
        ServiceProcessUnderTest("hr", *arguments, "--quota-policy-file", str(path)) as service,
        grpc.insecure_channel(service.address) as channel,
    ):
        stub = hr_pb2_grpc.EmployeeServiceStub(channel)
        request = hr_pb2.GetEmployeeRequest(employee_id="E1000")

        def remaining() -> str:
            _, call = stub.GetEmployee.with_call(request, timeout=5)
            return dict(call.trailing_metadata())[REMAINING_KEY]

        def throttled() -> bool:
            try:
                remaining()
            except grpc.RpcError as error:
                if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    return True
                raise
            return False

        assert [remaining(), remaining()] == ["1", "0"]
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetEmployee(request, timeout=5)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

        write_policy(path, rate=1000, burst=1000)
        wait_for(lambda: not throttled(), what="the new rate")
    assert service.process.returncode == 0
    assert service.log_events().count("quota_policy_applied") == 2
