"""Caller identity from Consul Connect certificates, on a real agent."""

from __future__ import annotations

import grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from deptmesh.sidecar.identity.spiffe import server_name
from tests.security.test_identity import WhoCalls


class TestConsulConnectIdentity:
    def test_connect_leaves_give_verified_callers(self, department):
        """A server on hr's Connect leaf sees a caller on reimbursement's leaf as reimbursement,
        each leaf obtained with its own department's token."""
        server_identity = ConsulConnectIdentity(department("hr"), "hr")
        client_identity = ConsulConnectIdentity(department("reimbursement"), "reimbursement")
        handler = WhoCalls()
        server = Server(identity_source=server_identity)
        server.add_service(
            hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
            hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
            handler,
        )
        port = server.start("127.0.0.1:0")
        mine = client_identity()
        credentials = grpc.ssl_channel_credentials(
            mine.trust_bundle_pem, mine.private_key_pem, mine.certificate_pem
        )
        target = server_name("hr", mine.trust_domain)
        try:
            with grpc.secure_channel(
                f"127.0.0.1:{port}",
                credentials,
                options=[("grpc.ssl_target_name_override", target)],
            ) as channel:
                hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                    hr_pb2.GetEmployeeRequest(), timeout=5
                )
        finally:
            server.stop(0)
            server_identity.stop()
            client_identity.stop()
        [caller] = handler.callers
        assert caller.service == "reimbursement"
        assert caller.spiffe_id.startswith(f"spiffe://{mine.trust_domain}/")
