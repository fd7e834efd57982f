"""SPIFFE identities: what a verified peer certificate must say for us to trust it.

A workload certificate names exactly one identity, as its only URI SAN:
`spiffe://<trust domain>/ns/<namespace>/dc/<datacenter>/svc/<service>` (the
form Consul Connect issues). It must not be a CA. Anything else is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

from deptmesh.sidecar.errors import IdentityError

__all__ = [
    "SpiffeId",
    "identity_of_certificate",
    "parse_spiffe_id",
    "server_name",
]

# Names as Consul allows them: nothing that could forge a log line or a header.
_SERVICE_PATH = re.compile(
    r"/ns/(?P<ns>[A-Za-z0-9._-]{1,63})/dc/(?P<dc>[A-Za-z0-9._-]{1,63})"
    r"/svc/(?P<service>[a-z0-9-]{1,63})"
)
_TRUST_DOMAIN = re.compile(r"[a-z0-9.-]{1,255}")
# What Consul drops from a name to make the common name of a Connect leaf.
_DNS_LABEL_DROPS = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    trust_domain: str
    namespace: str
    datacenter: str
    service: str

    @property
    def uri(self) -> str:
        return (
            f"spiffe://{self.trust_domain}/ns/{self.namespace}"
            f"/dc/{self.datacenter}/svc/{self.service}"
        )


def parse_spiffe_id(uri: str, trust_domain: str) -> SpiffeId:
    """The workload a SPIFFE URI names, if it is well-formed and in `trust_domain`."""
    if not uri.startswith("spiffe://"):
        raise IdentityError("not a spiffe:// URI")
    domain, slash, path = uri.removeprefix("spiffe://").partition("/")
    if not slash or not _TRUST_DOMAIN.fullmatch(domain):
        raise IdentityError("malformed SPIFFE trust domain")
    if domain != trust_domain:
        raise IdentityError(f"trust domain {domain!r} is not ours")
    match = _SERVICE_PATH.fullmatch("/" + path)
    if match is None:
        raise IdentityError("SPIFFE path does not name a service")
    return SpiffeId(domain, match["ns"], match["dc"], match["service"])


def identity_of_certificate(pem: bytes, trust_domain: str) -> SpiffeId:
    """The identity of an already chain-verified leaf certificate, or IdentityError."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as error:
        raise IdentityError("unreadable certificate") from error
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise IdentityError("a CA certificate cannot be a workload identity")
    except x509.ExtensionNotFound:
        pass
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as error:
        raise IdentityError("certificate has no subject alternative names") from error
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise IdentityError(f"certificate must have exactly one URI SAN, has {len(uris)}")
    return parse_spiffe_id(uris[0], trust_domain)


def server_name(service: str, trust_domain: str, namespace: str = "default") -> str:
    """The name a service's certificate carries as its common name, as Consul Connect
    issues it (`<service>.svc.<namespace>.<first 8 of the trust domain>.consul`).

    A client sets it as the TLS target name, so the handshake itself refuses a
    server whose certificate belongs to another service: Connect leaves have no
    DNS SAN, and gRPC then matches the target name against the common name.
    Like Consul, it keeps only the letters and digits of the names: the leaf of
    `cost-centres` has the common name `costcentres.svc...`.
    """
    service, namespace = (_DNS_LABEL_DROPS.sub("", name.lower()) for name in (service, namespace))
    return f"{service}.svc.{namespace}.{trust_domain.split('.')[0][:8]}.consul"
