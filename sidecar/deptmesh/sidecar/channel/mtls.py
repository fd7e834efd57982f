"""Channels that present our certificate and accept only the service we meant to call.

A channel keeps the credentials it was opened with (grpc channel credentials are
fixed), so each one holds the identity that was current when it was opened; the
balancer reopens channels when the identity changes.

A channel opened without an identity reaches an mTLS server in plaintext, and
the server closes the connection in its set-up: grpc says only "Socket closed".
`identity_required` turns that failure into IdentityRequired, which says what
is missing (it is looked at only once a call has failed).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import grpc.aio

from deptmesh.sidecar.errors import Unavailable
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.identity.spiffe import server_name

__all__ = [
    "IdentityRequired",
    "aio_mtls_channel_factory",
    "identity_required",
    "mtls_channel_factory",
]

# grpc's words for a connection the server closed before it was set up: what a
# plaintext client is told by a TLS server (the server logs WRONG_VERSION_NUMBER).
_CLOSED_IN_SET_UP = ("failed to connect to all addresses", "socket closed")


class IdentityRequired(Unavailable, grpc.RpcError):
    """A plaintext channel's call to a service that requires a deptmesh (mTLS) identity.

    Also a grpc.RpcError (UNAVAILABLE, with the explanation as its details), so
    callers handle it as the error it replaces; that error is its __cause__.
    """

    def __init__(self, service: str) -> None:
        super().__init__(
            f"{service} requires a deptmesh (mTLS) identity: it closed this plaintext"
            f" connection while setting it up; connect with identity=... (for example"
            f" connect({service!r}, cache, identity=ConsulConnectIdentity(registry, <you>)))",
            reason="IDENTITY_REQUIRED",
            metadata={"service": service},
        )

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self.message

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()


def identity_required(service: str, error: grpc.RpcError) -> IdentityRequired | None:
    """IdentityRequired when `error`, the failure of a plaintext channel's call to
    `service`, is a connection closed while it was set up; else None."""
    if error.code() is not grpc.StatusCode.UNAVAILABLE:
        return None
    details = (error.details() or "").lower()
    if all(words in details for words in _CLOSED_IN_SET_UP):
        return IdentityRequired(service)
    return None


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
