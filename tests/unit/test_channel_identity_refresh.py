"""Service channels follow their identity: new credentials, new channels, no call cut off."""

from __future__ import annotations

import dataclasses

from deptmesh.sidecar.channel.balancer import Balancer
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.identity.sources import ServerIdentity


class RecordedChannel:
    """Stands in for a grpc channel: remembers the identity it was opened with."""

    def __init__(self, address: str, identity: ServerIdentity) -> None:
        self.address = address
        self.identity = identity
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Identity:
    """An identity source whose identity the test replaces, like a renewed leaf."""

    def __init__(self, identity: ServerIdentity) -> None:
        self.current = identity

    def __call__(self) -> ServerIdentity:
        return self.current


def issue(ca: DevCertificateAuthority) -> ServerIdentity:
    leaf = ca.issue("reimbursement")
    return ServerIdentity(leaf.private_key_pem, leaf.certificate_pem, ca.ca_pem, ca.trust_domain)


def balancer_for(identity: Identity) -> Balancer:
    balancer = Balancer(
        "hr", lambda address: RecordedChannel(address, identity()), identity=identity
    )
    balancer.update(["127.0.0.1:50051"])
    return balancer


def pick_and_release(balancer: Balancer) -> RecordedChannel:
    endpoint = balancer.pick()
    balancer.release(endpoint, connection_failed=False)
    return endpoint.channel


class TestIdentityRefresh:
    def test_unchanged_identity_keeps_the_channel(self):
        """While the source returns the same identity, every call uses the same channel."""
        balancer = balancer_for(Identity(issue(DevCertificateAuthority())))
        first = pick_and_release(balancer)
        assert pick_and_release(balancer) is first
        assert not first.closed

    def test_equal_identity_from_a_new_object_keeps_the_channel(self):
        """A source that rebuilds an equal identity does not reopen channels."""
        identity = Identity(issue(DevCertificateAuthority()))
        balancer = balancer_for(identity)
        first = pick_and_release(balancer)
        identity.current = dataclasses.replace(identity.current)
        assert pick_and_release(balancer) is first

    def test_new_identity_opens_a_new_channel(self):
        """After a renewal the next call goes to a channel opened with the new identity."""
        ca = DevCertificateAuthority()
        identity = Identity(issue(ca))
        balancer = balancer_for(identity)
        old = pick_and_release(balancer)
        identity.current = issue(ca)
        new = pick_and_release(balancer)
        assert new is not old
        assert new.identity is identity.current
        assert old.closed

    def test_old_channel_closes_when_its_calls_end(self):
        """A call in flight during a renewal finishes on its channel, closed only after."""
        ca = DevCertificateAuthority()
        identity = Identity(issue(ca))
        balancer = balancer_for(identity)
        in_flight = balancer.pick()
        identity.current = issue(ca)
        assert pick_and_release(balancer) is not in_flight.channel
        assert not in_flight.channel.closed
        balancer.release(in_flight, connection_failed=False)
        assert in_flight.channel.closed

    def test_call_counts_survive_a_renewal(self):
        """The endpoint keeps counting its calls across the reopened channel."""
        ca = DevCertificateAuthority()
        identity = Identity(issue(ca))
        balancer = balancer_for(identity)
        pick_and_release(balancer)
        identity.current = issue(ca)
        pick_and_release(balancer)
        assert balancer.call_counts() == {"127.0.0.1:50051": 2}
