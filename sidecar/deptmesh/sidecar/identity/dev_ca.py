"""A local certificate authority issuing SPIFFE workload certificates.

For unit tests and running without Consul: the same certificate shape Consul
Connect issues (EC P-256 keys, one SPIFFE URI SAN), made in memory.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deptmesh.sidecar.identity.spiffe import SpiffeId, server_name

__all__ = ["DevCertificateAuthority", "IssuedCertificate"]


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """PEM-encoded key and certificate of one workload, plus the CA that signed it."""

    private_key_pem: bytes
    certificate_pem: bytes
    ca_pem: bytes


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class DevCertificateAuthority:
    def __init__(self, trust_domain: str = "dev.deptmesh.local", datacenter: str = "dc1") -> None:
        self.trust_domain = trust_domain
        self.datacenter = datacenter
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        # A unique name per CA: during a rotation the bundle holds two of them,
        # and verifiers look an issuer up by name.
        label = f"deptmesh dev CA {trust_domain} {secrets.token_hex(4)}"
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)])
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                # A CA names its trust domain, as Consul Connect's roots do.
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def ca_pem(self) -> bytes:
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def spiffe_id(self, service: str) -> SpiffeId:
        return SpiffeId(self.trust_domain, "default", self.datacenter, service)

    def issue(
        self,
        service: str,
        *,
        uris: list[str] | None = None,
        valid_for: datetime.timedelta = datetime.timedelta(hours=72),
        not_before: datetime.datetime | None = None,
        is_ca: bool = False,
    ) -> IssuedCertificate:
        """A leaf for `service`; the keyword arguments make broken ones for tests."""
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        names = [self.spiffe_id(service).uri] if uris is None else uris
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(
                            NameOID.COMMON_NAME, server_name(service, self.trust_domain)
                        )
                    ]
                )
            )
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + valid_for)
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri) for uri in names]),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        return IssuedCertificate(
            private_key_pem=_private_key_pem(key),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            ca_pem=self.ca_pem,
        )
