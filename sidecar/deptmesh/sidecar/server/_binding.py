"""What the sync and the asyncio server share besides the chain: limits and credentials.

An mTLS server re-reads its identity source on every handshake, so a renewed
leaf or a rotated CA needs no restart; a client without a certificate from our
trust bundle never gets past the handshake.
"""

from __future__ import annotations

from typing import Any

import grpc

from deptmesh.sidecar.identity.sources import IdentitySource, ServerIdentity

# Bounds what one caller can make us buffer: 4 MiB messages, 16 KiB of metadata.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.so_reuseport", 0),
]


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
