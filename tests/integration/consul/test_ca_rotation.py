"""Consul Connect CA rotation under load, on a real agent: no call fails.

The rotation changes the agent's CA for everything that runs on it after, so it
runs on an agent of its own, never the session's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar import Server
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity
from deptmesh.sidecar.identity.spiffe import server_name
from tests.integration.servers import wait_for

# Consul renews each leaf at a random moment up to 30 s after the new root.
ROTATION_TIMEOUT = 75.0


class PresentedCertificates(hr_pb2_grpc.EmployeeServiceServicer):
    """Answers every call and keeps the leaf the latest caller presented."""

    def __init__(self) -> None:
        self.latest = b""

    def GetEmployee(self, request, context):
        self.latest = context.auth_context()["x509_pem_cert"][0]
        return hr_pb2.GetEmployeeResponse()


class Load:
    """Calls GetEmployee from a few threads until stopped, counting what happens."""

    def __init__(self, channel: grpc.Channel, threads: int = 4) -> None:
        self._stub = hr_pb2_grpc.EmployeeServiceStub(channel)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.succeeded = 0
        self.failures: list[grpc.RpcError] = []
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._stub.GetEmployee(hr_pb2.GetEmployeeRequest(), timeout=5)
            except grpc.RpcError as error:
                with self._lock:
                    self.failures.append(error)
            else:
                with self._lock:
                    self.succeeded += 1

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join()


def new_private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def active_root_pem(consul) -> str:
    _, roots = consul.connect_roots(0, 0)
    [active] = [root for root in roots["Roots"] if root["Active"]]
    return active["RootCert"]


def issued_by(certificate_pem: bytes, root_pem: str) -> bool:
    """Whether the leaf (the first certificate in the PEM) is signed by this root."""
    leaf = x509.load_pem_x509_certificates(certificate_pem)[0]
    try:
        leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(root_pem.encode()))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@pytest.fixture
def rotation_agent() -> Iterator[DevAgent]:
    """A Consul agent whose CA this test alone rotates."""
    with DevAgent() as agent:
        yield agent


class TestCaRotation:
    def test_rotation_under_load_fails_no_call(self, rotation_agent):
        """A new root mid-traffic (the platform's token rotates it): no call fails and both
        sides move to the new root."""
        # No hyphen: Consul drops it from the leaf's common name, which the
        # client checks (see spiffe.server_name).
        hr_name, caller_name = (f"{role}{uuid.uuid4().hex[:8]}" for role in ("hr", "caller"))
        acl = rotation_agent.admin()

        def department(name: str) -> ConsulRegistry:
            return ConsulRegistry(
                rotation_agent.address, token=acl.department_token(name).secret_id
            )

        consul = department(hr_name)
        rotating = ConsulRegistry(
            rotation_agent.address, token=acl.platform_token(rotate_connect_ca=True).secret_id
        )
        server_identity = ConsulConnectIdentity(consul, hr_name)
        caller_identity = ConsulConnectIdentity(department(caller_name), caller_name)
        handler = PresentedCertificates()
        server = Server(identity_source=server_identity)
        server.add_service(
            hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"],
            hr_pb2_grpc.add_EmployeeServiceServicer_to_server,
            handler,
        )
        instance = instance_of(hr_name, "127.0.0.1", server.start(), server.health_port)
        consul.register(instance)
        cache = EndpointCache(consul)
        channel = client.connect(hr_name, cache, identity=caller_identity)
        load: Load | None = None
        try:
            wait_for(lambda: consul.resolve(hr_name), what="hr healthy in Consul")
            old_root = active_root_pem(consul)
            load = Load(channel)
            wait_for(lambda: load.succeeded >= 50, what="calls before the rotation")

            started = time.monotonic()
            rotating.rotate_connect_ca(new_private_key_pem())
            new_root = active_root_pem(consul)
            assert new_root != old_root

            def both_sides_on_new_root() -> bool:
                return (
                    issued_by(server_identity().certificate_pem, new_root)
                    and issued_by(caller_identity().certificate_pem, new_root)
                    # What the caller actually presents on the wire.
                    and issued_by(handler.latest, new_root)
                )

            wait_for(both_sides_on_new_root, ROTATION_TIMEOUT, "both sides on the new root")
            rotation_seconds = time.monotonic() - started
            # Keep the load going on the reopened channels.
            after = load.succeeded
            wait_for(lambda: load.succeeded >= after + 200, what="calls after the rotation")

            # A new connection trusting only the new root: the server's handshake
            # presents a leaf from it, and accepts ours.
            mine = caller_identity()
            credentials = grpc.ssl_channel_credentials(
                new_root.encode(), mine.private_key_pem, mine.certificate_pem
            )
            target = server_name(hr_name, mine.trust_domain)
            with grpc.secure_channel(
                instance.endpoint, credentials, options=[("grpc.ssl_target_name_override", target)]
            ) as only_new_root:
                hr_pb2_grpc.EmployeeServiceStub(only_new_root).GetEmployee(
                    hr_pb2.GetEmployeeRequest(), timeout=5
                )
            # And a service channel opened after the rotation works too.
            with client.connect(hr_name, cache, identity=caller_identity) as fresh:
                hr_pb2_grpc.EmployeeServiceStub(fresh).GetEmployee(
                    hr_pb2.GetEmployeeRequest(), timeout=5
                )
        finally:
            if load is not None:
                load.stop()
            channel.close()
            cache.close()
            consul.deregister(instance.instance_id)
            server.stop(0)
            server_identity.stop()
            caller_identity.stop()
        outcome = f"{load.succeeded} calls, new root on both sides after {rotation_seconds:.1f}s"
        assert load.failures == [], outcome
        assert load.succeeded >= 250, outcome
