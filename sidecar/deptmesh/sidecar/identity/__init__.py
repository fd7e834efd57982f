"""Who a service is and who is calling it: SPIFFE IDs from verified certificates.

sources.py: where a service's own certificate comes from (Consul Connect, PEM
files, a dev CA); stage.py: the identity stage of the server chain, which
takes the caller only from the verified client certificate; spiffe.py: what
such a certificate must say; dev_ca.py: a local CA for tests and one host.
"""

from deptmesh.sidecar.errors import IdentityError
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority, IssuedCertificate
from deptmesh.sidecar.identity.sources import (
    ConsulConnectIdentity,
    FileIdentity,
    IdentitySource,
    ServerIdentity,
    dev_ca_identity,
    own_spiffe_id,
)
from deptmesh.sidecar.identity.spiffe import (
    SpiffeId,
    identity_of_certificate,
    parse_spiffe_id,
    server_name,
)
from deptmesh.sidecar.identity.stage import AnonymousIdentityStage, IdentityStage

__all__ = [
    "AnonymousIdentityStage",
    "ConsulConnectIdentity",
    "DevCertificateAuthority",
    "FileIdentity",
    "IdentityError",
    "IdentitySource",
    "IdentityStage",
    "IssuedCertificate",
    "ServerIdentity",
    "SpiffeId",
    "dev_ca_identity",
    "identity_of_certificate",
    "own_spiffe_id",
    "parse_spiffe_id",
    "server_name",
]
