"""SPIFFE ID parsing: what names a workload of ours."""

from __future__ import annotations

import pytest

from deptmesh.sidecar.errors import IdentityError
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.identity.spiffe import (
    identity_of_certificate,
    parse_spiffe_id,
    server_name,
)

DOMAIN = "dev.deptmesh.local"


class TestParseSpiffeId:
    def test_consul_connect_form(self):
        """spiffe://<domain>/ns/<ns>/dc/<dc>/svc/<service> names the service."""
        parsed = parse_spiffe_id(f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/finance", DOMAIN)
        assert (parsed.service, parsed.datacenter, parsed.namespace) == (
            "finance",
            "dc1",
            "default",
        )
        assert parsed.uri == f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/finance"

    @pytest.mark.parametrize(
        "uri",
        [
            f"https://{DOMAIN}/ns/default/dc/dc1/svc/finance",
            "spiffe://other.domain/ns/default/dc/dc1/svc/finance",
            f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/Finance",
            f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/finance/extra",
            f"spiffe://{DOMAIN}",
            f"spiffe://{DOMAIN}/ns/default/dc/dc1/svc/fin\r\nance",
            f"spiffe://{DOMAIN}/ns/default\r\nFORGED/dc/dc1/svc/finance",
            f"spiffe://{DOMAIN}/ns/default/dc/dc\x1b[2J1/svc/finance",
            f"spiffe://{DOMAIN}/ns/de fault/dc/dc1/svc/finance",
        ],
    )
    def test_refused_ids(self, uri):
        """Other schemes, domains, paths and control characters are refused."""
        with pytest.raises(IdentityError):
            parse_spiffe_id(uri, DOMAIN)


class TestIdentityOfCertificate:
    def test_dev_ca_leaf_names_its_service(self):
        """A dev CA leaf carries the Consul Connect form of its service's ID."""
        ca = DevCertificateAuthority(DOMAIN)
        identity = identity_of_certificate(ca.issue("hr").certificate_pem, DOMAIN)
        assert identity.service == "hr"

    def test_garbage_is_refused(self):
        """Bytes that are not a certificate raise IdentityError, not a parser error."""
        with pytest.raises(IdentityError):
            identity_of_certificate(b"-----BEGIN CERTIFICATE-----\nnope\n", DOMAIN)


class TestServerName:
    def test_keeps_only_letters_and_digits_of_names_as_consul_does(self):
        """A hyphenated service's leaf is `costcentres.svc...`: the target name must match."""
        assert server_name("cost-centres", "11111111-2222.consul") == (
            "costcentres.svc.default.11111111.consul"
        )
