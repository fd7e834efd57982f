"""Channels that present our certificate and accept only the service we meant to call.

A channel keeps the credentials it was opened with (grpc channel credentials are
fixed), so each one holds the identity that was current when it was opened; the
balancer reopens channels when the identity changes.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import grpc.aio

from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.identity.spiffe import server_name

__all__ = ["aio_mtls_channel_factory", "mtls_channel_factory"]

Options = list[tuple[str, str]]


def _mtls(service: str, identity: IdentitySource) -> tuple[grpc.ChannelCredentials, Options]:
    mine = identity()
    credentials = grpc.ssl_channel_credentials(
        mine.trust_bundle_pem, mine.private_key_pem, mine.certificate_pem
    )
    # The handshake refuses a server whose certificate is not `service`'s (see server_name).
    target = server_name(service, mine.trust_domain)
    return credentials, [("grpc.ssl_target_name_override", target)]


def mtls_channel_factory(service: str, identity: IdentitySource) -> Callable[[str], grpc.Channel]:
    """Opens mTLS channels that accept only a server holding `service`'s certificate."""

    def open_channel(address: str) -> grpc.Channel:
        credentials, options = _mtls(service, identity)
        return grpc.secure_channel(address, credentials, options=options)

    return open_channel


def aio_mtls_channel_factory(
    service: str, identity: IdentitySource
) -> Callable[[str], grpc.aio.Channel]:
    """The same for grpc.aio channels (opened on the running event loop)."""

    def open_channel(address: str) -> grpc.aio.Channel:
        credentials, options = _mtls(service, identity)
        return grpc.aio.secure_channel(address, credentials, options=options)

    return open_channel
