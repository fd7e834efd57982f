"""A service's own certificate: what it serves with and presents when it calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sidecar.spiffe import identity_of_certificate

__all__ = ["IdentitySource", "ServerIdentity", "own_spiffe_id"]


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """This service's certificate and key, and the CA bundle its peers must chain to."""

    private_key_pem: bytes
    certificate_pem: bytes
    trust_bundle_pem: bytes
    trust_domain: str


# Where the certificate comes from: called on every new TLS handshake and
# connection, so a renewed leaf or a rotated trust bundle is used with no
# restart. Implementations live in sidecar.identity_sources.
IdentitySource = Callable[[], ServerIdentity]


def own_spiffe_id(source: IdentitySource | None) -> str:
    """The SPIFFE ID of a process's own certificate; '' without one (plaintext)."""
    if source is None:
        return ""
    identity = source()
    return identity_of_certificate(identity.certificate_pem, identity.trust_domain).uri
