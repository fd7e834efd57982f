"""Caller identity on an mTLS server: only a verified certificate names the caller.

Each case asserts the status the client gets AND that the handler never ran,
and that the server goes on serving a well-behaved caller afterwards.
"""

from __future__ import annotations

import datetime

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar import Server
from deptmesh.sidecar.caller import current_caller
from deptmesh.sidecar.identity import ServerIdentity
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority, IssuedCertificate
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.identity.spiffe import server_name
from tests.aio_servers import AioServerThread
from tests.security.mtls import CA


class WhoCalls(hr_pb2_grpc.EmployeeServiceServicer):
    """Records the caller of every call that reaches the handler."""

    def __init__(self) -> None:
        self.callers = []

    def GetEmployee(self, request, context):
        self.callers.append(current_caller())
        return hr_pb2.GetEmployeeResponse()


class AsyncWhoCalls(WhoCalls):
    """The same handler for the asyncio server."""

    async def GetEmployee(self, request, context):  # type: ignore[override]
        self.callers.append(current_caller())
        return hr_pb2.GetEmployeeResponse()


def serve_hr(flavour: str, identity_source: IdentitySource):
    """hr's EmployeeService on the sync or the asyncio server: (server, handler, port)."""
    aio = flavour == "aio"
    handler = AsyncWhoCalls() if aio else WhoCalls()
    server = (AioServerThread if aio else Server)(identity_source=identity_source)
    server.add_service(
        hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
        hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
        handler,
    )
    return server, handler, server.start("127.0.0.1:0")


# Both servers share one chain; every identity case must hold on each.
@pytest.fixture(scope="module", params=["sync", "aio"])
def flavour(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def hr_server(flavour):
    leaf = CA.issue("hr")
    identity = ServerIdentity(
        leaf.private_key_pem, leaf.certificate_pem, CA.ca_pem, CA.trust_domain
    )
    server, handler, port = serve_hr(flavour, lambda: identity)
    yield handler, f"127.0.0.1:{port}"
    server.stop(0)


def call_as(address: str, credentials: grpc.ChannelCredentials | None, metadata=(), expect="hr"):
    channel = (
        grpc.insecure_channel(address)
        if credentials is None
        else grpc.secure_channel(
            address,
            credentials,
            options=[("grpc.ssl_target_name_override", server_name(expect, CA.trust_domain))],
        )
    )
    with channel:
        stub = hr_pb2_grpc.EmployeeServiceStub(channel)
        return stub.GetEmployee(hr_pb2.GetEmployeeRequest(), metadata=metadata, timeout=5)


def client_credentials(leaf: IssuedCertificate, ca_pem: bytes = CA.ca_pem):
    return grpc.ssl_channel_credentials(ca_pem, leaf.private_key_pem, leaf.certificate_pem)


def refused(hr_server, credentials, expected: set[grpc.StatusCode]) -> None:
    handler, address = hr_server
    before = len(handler.callers)
    with pytest.raises(grpc.RpcError) as caught:
        call_as(address, credentials)
    assert caught.value.code() in expected
    assert caught.value.code() is not grpc.StatusCode.UNKNOWN
    assert len(handler.callers) == before, "the handler ran for a refused caller"
    call_as(address, client_credentials(CA.issue("reimbursement")))  # still serving
    assert len(handler.callers) == before + 1


HANDSHAKE = {grpc.StatusCode.UNAVAILABLE}
IDENTITY = {grpc.StatusCode.UNAUTHENTICATED}


class TestVerifiedCaller:
    def test_handler_sees_the_certificate_identity(self, hr_server):
        """A caller with a valid leaf is bound as the service its SPIFFE ID names."""
        handler, address = hr_server
        call_as(address, client_credentials(CA.issue("reimbursement")))
        caller = handler.callers[-1]
        assert caller.service == "reimbursement"
        assert caller.spiffe_id == CA.spiffe_id("reimbursement").uri

    @pytest.mark.parametrize(
        "claim",
        [
            ("x-caller", "finance"),
            ("x-forwarded-client-cert", "URI=spiffe://x/svc/hr"),
            ("baggage", "caller=finance"),
        ],
    )
    def test_identity_metadata_is_ignored(self, hr_server, claim):
        """Metadata claiming another identity never changes the caller."""
        handler, address = hr_server
        call_as(address, client_credentials(CA.issue("reimbursement")), metadata=[claim])
        assert handler.callers[-1].service == "reimbursement"


class TestServerIdentity:
    def test_client_refuses_a_server_holding_another_services_certificate(self, hr_server):
        """A client that means to call finance refuses the server that holds an hr leaf."""
        handler, address = hr_server
        before = len(handler.callers)
        with pytest.raises(grpc.RpcError) as caught:
            call_as(address, client_credentials(CA.issue("reimbursement")), expect="finance")
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert len(handler.callers) == before
        call_as(address, client_credentials(CA.issue("reimbursement")))  # still serving
        assert len(handler.callers) == before + 1


class TestRefusedCallers:
    def test_plaintext_client(self, hr_server):
        """A plaintext client never completes a call."""
        refused(hr_server, None, HANDSHAKE)

    def test_tls_client_without_certificate(self, hr_server):
        """TLS without a client certificate fails the handshake."""
        refused(hr_server, grpc.ssl_channel_credentials(CA.ca_pem), HANDSHAKE)

    def test_certificate_from_another_ca(self, hr_server):
        """A leaf from a CA outside our bundle fails the handshake."""
        other = DevCertificateAuthority(CA.trust_domain)
        refused(hr_server, client_credentials(other.issue("reimbursement")), HANDSHAKE)

    def test_expired_leaf(self, hr_server):
        """An expired client certificate fails the handshake."""
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
        leaf = CA.issue("reimbursement", not_before=past, valid_for=datetime.timedelta(hours=1))
        refused(hr_server, client_credentials(leaf), HANDSHAKE)

    def test_not_yet_valid_leaf(self, hr_server):
        """A client certificate valid only from tomorrow fails the handshake."""
        future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        refused(
            hr_server, client_credentials(CA.issue("reimbursement", not_before=future)), HANDSHAKE
        )

    @pytest.mark.parametrize(
        "uris",
        [
            [],
            [
                "spiffe://dev.deptmesh.local/ns/default/dc/dc1/svc/a",
                "spiffe://dev.deptmesh.local/ns/default/dc/dc1/svc/b",
            ],
            ["https://dev.deptmesh.local/ns/default/dc/dc1/svc/reimbursement"],
            ["spiffe://evil.example/ns/default/dc/dc1/svc/reimbursement"],
            ["spiffe://dev.deptmesh.local/not/a/service"],
        ],
        ids=["no-uri", "two-uris", "not-spiffe", "other-trust-domain", "not-a-service"],
    )
    def test_certificate_not_naming_one_service_of_ours(self, hr_server, uris):
        """Zero or two URI SANs, a non-spiffe URI, another trust domain: UNAUTHENTICATED."""
        leaf = CA.issue("reimbursement", uris=uris)
        refused(hr_server, client_credentials(leaf), IDENTITY)

    def test_leaf_that_is_a_ca(self, hr_server):
        """A certificate with CA=true cannot be a caller identity."""
        refused(hr_server, client_credentials(CA.issue("reimbursement", is_ca=True)), IDENTITY)


class TestRotation:
    def test_rotated_certificate_and_bundle_apply_without_restart(self, flavour):
        """After the source rotates to a new CA, new connections use it; no restart. Before
        it, a caller with a new-CA leaf is refused at the handshake by the old trust bundle
        alone (it trusts both CAs itself), and its call never reaches the handler."""
        old_ca, new_ca = CA, DevCertificateAuthority(CA.trust_domain)
        old_leaf, new_leaf = old_ca.issue("hr"), new_ca.issue("hr")
        current = {
            "identity": ServerIdentity(
                old_leaf.private_key_pem, old_leaf.certificate_pem, old_ca.ca_pem, CA.trust_domain
            )
        }
        server, handler, port = serve_hr(flavour, lambda: current["identity"])
        address = f"127.0.0.1:{port}"
        try:
            both_bundles = old_ca.ca_pem + new_ca.ca_pem
            old_client = client_credentials(old_ca.issue("reimbursement"), both_bundles)
            new_client = client_credentials(new_ca.issue("reimbursement"), both_bundles)
            with pytest.raises(grpc.RpcError) as caught:
                call_as(address, new_client)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert handler.callers == [], "the handler ran for a refused caller"
            call_as(address, old_client)

            current["identity"] = ServerIdentity(
                new_leaf.private_key_pem, new_leaf.certificate_pem, both_bundles, CA.trust_domain
            )
            call_as(address, new_client)  # the same credentials, refused only by the bundle
            call_as(address, old_client)  # the old CA is still trusted during the rotation
            assert [c.service for c in handler.callers] == ["reimbursement"] * 3
        finally:
            server.stop(0)


class TestHealthOnlyPort:
    def test_health_port_serves_health_and_nothing_else(self, flavour):
        """Consul's plaintext check port answers grpc.health.v1 only; the API stays mTLS."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from deptmesh.sidecar.identity.sources import dev_ca_identity

        server, _, port = serve_hr(flavour, dev_ca_identity(CA, "hr"))
        try:
            assert server.health_port not in (0, port)
            with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
                with pytest.raises(grpc.RpcError) as caught:
                    hr_pb2_grpc.EmployeeServiceStub(channel).GetEmployee(
                        hr_pb2.GetEmployeeRequest(), timeout=5
                    )
                assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
        finally:
            server.stop(0)
