"""Where a service's certificate, key and trust bundle come from.

Each source is an `IdentitySource` (see server/): a callable returning
the current ServerIdentity, consulted by servers on every new handshake and by
client channels on every call. It must be cheap and return the same object
until something changes: a new object makes callers compare it by value.

- ConsulConnectIdentity: the leaf and roots from the local Consul agent, kept
  current by blocking queries, so a renewed leaf or rotated CA needs no restart.
  When Consul refuses the token (revoked, say) the service keeps serving on the
  leaf it has until that expires, and logs so once (`connect_leaf_refused`).
- dev_ca_identity: a leaf from the in-memory DevCertificateAuthority.
- FileIdentity: PEM files on disk (SPIRE, cert-manager), re-read when they change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryRefused
from deptmesh.registry.watch import follow
from deptmesh.sidecar.control_plane import asking_consul
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.identity.spiffe import identity_of_certificate

__all__ = [
    "ConsulConnectIdentity",
    "FileIdentity",
    "IdentitySource",
    "ServerIdentity",
    "dev_ca_identity",
    "own_spiffe_id",
]

_log = structlog.get_logger("deptmesh.sidecar")


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """This service's certificate and key, and the CA bundle its peers must chain to."""

    private_key_pem: bytes
    certificate_pem: bytes
    trust_bundle_pem: bytes
    trust_domain: str


# Where the certificate comes from: called on every new TLS handshake and
# connection, so a renewed leaf or a rotated trust bundle is used with no
# restart. Implementations are below.
IdentitySource = Callable[[], ServerIdentity]


def own_spiffe_id(source: IdentitySource | None) -> str:
    """The SPIFFE ID of a process's own certificate; '' without one (plaintext)."""
    if source is None:
        return ""
    identity = source()
    return identity_of_certificate(identity.certificate_pem, identity.trust_domain).uri


def dev_ca_identity(ca: DevCertificateAuthority, service: str) -> IdentitySource:
    leaf = ca.issue(service)
    identity = ServerIdentity(
        leaf.private_key_pem, leaf.certificate_pem, ca.ca_pem, ca.trust_domain
    )
    return lambda: identity


class ConsulConnectIdentity:
    """The service's Connect leaf and the CA roots, watched with blocking queries."""

    def __init__(
        self, registry: ConsulRegistry, service: str, *, wait_seconds: float = 10.0
    ) -> None:
        self._service = service
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._registry = registry
        with asking_consul(f"the Connect leaf of {service}"):
            leaf_index, self._leaf = registry.connect_leaf(service, 0, 0)
            self._confirm_token()
            roots_index, self._roots = registry.connect_roots(0, 0)
        self._identity = self._build()
        follow(
            f"connect-leaf-{service}",
            self._fetch_leaf,
            self._leaf_renewed,
            self._stopping,
            index=leaf_index,
            wait_seconds=wait_seconds,
            on_refused=self._leaf_refused,
        )
        follow(
            "connect-roots",
            registry.connect_roots,
            self._roots_rotated,
            self._stopping,
            index=roots_index,
            wait_seconds=wait_seconds,
        )

    def __call__(self) -> ServerIdentity:
        return self._identity

    def _confirm_token(self) -> None:
        # The agent hands out a cached leaf even to a token revoked since; ask
        # whether the token still may act as the service (RegistryRefused if not).
        self._registry.confirm_service_identity(self._service, self._leaf["ServiceURI"])

    def _fetch_leaf(self, index: int, wait_seconds: float) -> tuple[int, Any]:
        # Confirmed before each wait, so a revocation is seen at once, not a wait later.
        self._confirm_token()
        found: tuple[int, Any] = self._registry.connect_leaf(self._service, index, wait_seconds)
        return found

    def stop(self) -> None:
        self._stopping.set()

    def _build(self) -> ServerIdentity:
        # Every root, active or not: during a rotation callers may still hold
        # leaves from the previous one.
        bundle = "".join(root["RootCert"].strip() + "\n" for root in self._roots["Roots"])
        return ServerIdentity(
            private_key_pem=self._leaf["PrivateKeyPEM"].encode(),
            certificate_pem=self._leaf["CertPEM"].encode(),
            trust_bundle_pem=bundle.encode(),
            trust_domain=self._roots["TrustDomain"],
        )

    def _leaf_renewed(self, leaf: Any) -> None:
        with self._lock:
            self._leaf = leaf
            self._identity = self._build()
        _log.info("connect_leaf_renewed", service=self._service)

    def _leaf_refused(self, error: RegistryRefused) -> None:
        _log.error(
            "connect_leaf_refused",
            service=self._service,
            error=str(error),
            serving="on the current leaf until it expires; it will not be renewed",
            valid_until=self._leaf.get("ValidBefore", "unknown"),
        )

    def _roots_rotated(self, roots: Any) -> None:
        with self._lock:
            self._roots = roots
            self._identity = self._build()
        _log.info("connect_roots_rotated", roots=len(roots["Roots"]))


class FileIdentity:
    """Certificate, key and bundle from PEM files, re-read when any of them changes.

    The files are looked at (three stat calls) at most once per `check_interval`:
    the source is consulted on every outbound call.
    """

    def __init__(
        self,
        certificate: Path,
        key: Path,
        bundle: Path,
        trust_domain: str,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = (certificate, key, bundle)
        self._trust_domain = trust_domain
        self._interval = check_interval
        self._clock = clock
        self._next_check = clock() + check_interval
        self._stamp: tuple[int, ...] = ()
        self._identity = self._load()

    def _load(self) -> ServerIdentity:
        certificate, key, bundle = (path.read_bytes() for path in self._paths)
        self._stamp = tuple(path.stat().st_mtime_ns for path in self._paths)
        return ServerIdentity(key, certificate, bundle, self._trust_domain)

    def __call__(self) -> ServerIdentity:
        if self._clock() < self._next_check:
            return self._identity
        self._next_check = self._clock() + self._interval
        stamp = tuple(path.stat().st_mtime_ns for path in self._paths)
        if stamp != self._stamp:
            self._identity = self._load()
        return self._identity
