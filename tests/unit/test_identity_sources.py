"""Identity sources that need no network: files on disk and the dev CA."""

from __future__ import annotations

import os

from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.identity.sources import FileIdentity, dev_ca_identity


def write(directory, leaf):
    (directory / "cert.pem").write_bytes(leaf.certificate_pem)
    (directory / "key.pem").write_bytes(leaf.private_key_pem)
    (directory / "bundle.pem").write_bytes(leaf.ca_pem)


class TestFileIdentity:
    def test_rewritten_files_are_picked_up(self, tmp_path):
        """A certificate replaced on disk is returned once the check interval has passed,
        without a restart."""
        ca = DevCertificateAuthority()
        first, second = ca.issue("hr"), ca.issue("hr")
        write(tmp_path, first)
        now = [100.0]
        source = FileIdentity(
            tmp_path / "cert.pem",
            tmp_path / "key.pem",
            tmp_path / "bundle.pem",
            ca.trust_domain,
            clock=lambda: now[0],
        )
        assert source().certificate_pem == first.certificate_pem
        write(tmp_path, second)
        stat = (tmp_path / "cert.pem").stat()
        # Make the change visible even on file systems with coarse timestamps.
        os.utime(tmp_path / "cert.pem", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert source().certificate_pem == first.certificate_pem  # not looked at yet
        now[0] += 1.0
        assert source().certificate_pem == second.certificate_pem

    def test_unchanged_files_return_the_same_identity(self, tmp_path):
        """Without a change, the identity object is reused (no re-read per handshake)."""
        ca = DevCertificateAuthority()
        write(tmp_path, ca.issue("hr"))
        source = FileIdentity(
            tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "bundle.pem", ca.trust_domain
        )
        assert source() is source()


def test_dev_ca_identity_names_the_trust_domain():
    """The dev CA source carries its CA as the bundle and its trust domain."""
    ca = DevCertificateAuthority("test.local")
    identity = dev_ca_identity(ca, "finance")()
    assert (identity.trust_domain, identity.trust_bundle_pem) == ("test.local", ca.ca_pem)
