"""Where a service's certificate, key and trust bundle come from.

Each source is an `IdentitySource` (see sidecar.server): a callable returning
the current ServerIdentity, cheap to call, consulted on every new handshake.

- ConsulConnectIdentity: the leaf and roots from the local Consul agent, kept
  current by blocking queries, so a renewed leaf or rotated CA needs no restart.
- dev_ca_identity: a leaf from the in-memory DevCertificateAuthority.
- FileIdentity: PEM files on disk (SPIRE, cert-manager), re-read when they change.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from registry.consul import ConsulRegistry
from registry.protocol import RegistryUnavailable
from sidecar.dev_ca import DevCertificateAuthority
from sidecar.server import IdentitySource, ServerIdentity

__all__ = ["ConsulConnectIdentity", "FileIdentity", "dev_ca_identity"]

_log = structlog.get_logger("deptmesh.sidecar")


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
        self._registry = registry
        self._service = service
        self._wait = wait_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._leaf_index, leaf = registry.connect_leaf(service, 0, 0)
        self._roots_index, roots = registry.connect_roots(0, 0)
        self._leaf, self._roots = leaf, roots
        self._identity = self._build()
        for name, target in (("leaf", self._watch_leaf), ("roots", self._watch_roots)):
            threading.Thread(target=target, name=f"connect-{name}", daemon=True).start()

    def __call__(self) -> ServerIdentity:
        return self._identity

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

    def _watch_leaf(self) -> None:
        while not self._stopping.is_set():
            try:
                index, leaf = self._registry.connect_leaf(
                    self._service, self._leaf_index, self._wait
                )
            except RegistryUnavailable as error:
                if self._stopping.is_set():
                    return
                _log.warning("connect_leaf_unavailable", error=str(error))
                self._stopping.wait(1.0)
                continue
            if index != self._leaf_index:
                with self._lock:
                    self._leaf_index, self._leaf = index, leaf
                    self._identity = self._build()
                _log.info("connect_leaf_renewed", service=self._service)

    def _watch_roots(self) -> None:
        while not self._stopping.is_set():
            try:
                index, roots = self._registry.connect_roots(self._roots_index, self._wait)
            except RegistryUnavailable as error:
                if self._stopping.is_set():
                    return
                _log.warning("connect_roots_unavailable", error=str(error))
                self._stopping.wait(1.0)
                continue
            if index != self._roots_index:
                with self._lock:
                    self._roots_index, self._roots = index, roots
                    self._identity = self._build()
                _log.info("connect_roots_rotated", roots=len(roots["Roots"]))


class FileIdentity:
    """Certificate, key and bundle from PEM files, re-read when any of them changes."""

    def __init__(self, certificate: Path, key: Path, bundle: Path, trust_domain: str) -> None:
        self._paths = (certificate, key, bundle)
        self._trust_domain = trust_domain
        self._stamp: tuple[int, ...] = ()
        self._identity = self._load()

    def _load(self) -> ServerIdentity:
        certificate, key, bundle = (path.read_bytes() for path in self._paths)
        self._stamp = tuple(path.stat().st_mtime_ns for path in self._paths)
        return ServerIdentity(key, certificate, bundle, self._trust_domain)

    def __call__(self) -> ServerIdentity:
        stamp = tuple(path.stat().st_mtime_ns for path in self._paths)
        if stamp != self._stamp:
            self._identity = self._load()
        return self._identity
