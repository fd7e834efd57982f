"""What the sync and the asyncio server share: the chain, the limits, the credentials.

The chain order is declared here and only here (see ../shared/design.md):
identity, inbound deadline, tracing, usage metering and access log,
authorization, quota; the adapters map errors to statuses around the handler.
The deadline is recorded before the span opens so the span can say how much
time the caller left; tracing and metering come before the decisions so that
denied and throttled calls are traced, logged and counted; authorization comes
before quota so that a caller who may not call spends nothing.
"""

from __future__ import annotations

from typing import Any

import grpc

from sidecar._authorization import Authorize, PolicySource
from sidecar._chain import Chain, Stage
from sidecar._identity import AnonymousIdentity, VerifiedIdentity
from sidecar.deadline import InboundDeadline
from sidecar.identity import IdentitySource, ServerIdentity, own_spiffe_id
from sidecar.quotas import Quotas
from sidecar.tracing import TraceServerCalls, Tracing
from sidecar.usage import Usage

# Bounds what one caller can make us buffer: 4 MiB messages, 16 KiB of metadata.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.so_reuseport", 0),
]


def server_chain(
    identity_source: IdentitySource | None,
    authorization: tuple[str, PolicySource] | None,
    usage: Usage | None,
    quotas: Quotas | None,
    tracing: Tracing | None,
) -> Chain:
    identity: Stage = (
        AnonymousIdentity()
        if identity_source is None
        else VerifiedIdentity(identity_source().trust_domain)
    )
    stages: list[Stage | None] = [
        identity,
        InboundDeadline(),
        None if tracing is None else TraceServerCalls(tracing, own_spiffe_id(identity_source)),
        usage,
        None if authorization is None else Authorize(*authorization),
        quotas,
    ]
    return Chain([stage for stage in stages if stage is not None])


def _certificate_configuration(identity: ServerIdentity) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(identity.private_key_pem, identity.certificate_pem)],
        root_certificates=identity.trust_bundle_pem,
    )


def mtls_credentials(source: IdentitySource) -> grpc.ServerCredentials:
    current = source()

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        nonlocal current
        latest = source()
        if latest == current:
            return None  # grpc keeps the configuration it has
        current = latest
        return _certificate_configuration(latest)

    # require_client_authentication: a caller without a certificate from our
    # bundle never gets past the handshake.
    return grpc.dynamic_ssl_server_credentials(
        _certificate_configuration(current),
        fetch,  # type: ignore[arg-type]  # grpc documents None as "keep the current one"
        require_client_authentication=True,
    )


def bind(server: Any, address: str, identity_source: IdentitySource | None) -> int:
    """Binds a sync or aio grpc server: mTLS with an identity, else plaintext; the port."""
    port: int = (
        server.add_insecure_port(address)
        if identity_source is None
        else server.add_secure_port(address, mtls_credentials(identity_source))
    )
    if port == 0:
        raise OSError(f"could not bind {address}")
    return port


def health_only_address(address: str) -> str:
    """Where the plaintext health-only port binds: the same host, any free port."""
    return f"{address.rpartition(':')[0]}:0"
