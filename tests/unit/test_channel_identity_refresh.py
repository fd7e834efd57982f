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


class Openings:
    """The channel factory the balancer is given: opens RecordedChannels with the identity
    the source holds at that moment, and keeps every one it opened, in order."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.channels: list[RecordedChannel] = []

    def __call__(self, address: str) -> RecordedChannel:
        channel = RecordedChannel(address, self.identity())
        self.channels.append(channel)
        return channel


def balancer_for(identity: Identity, openings: Openings | None = None) -> Balancer:
    balancer = Balancer("hr", openings or Openings(identity), identity=identity)
    balancer.update(["127.0.0.1:50051"])
    return balancer


def pick_and_release(balancer: Balancer) -> RecordedChannel:
    """One call: the channel that served it."""
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
        """After a renewal the next call is served by a channel opened with the renewed leaf,
        the only channel opened since, and the old channel is closed."""
        ca = DevCertificateAuthority()
        first, renewed = issue(ca), issue(ca)
        identity = Identity(first)
        openings = Openings(identity)
        balancer = balancer_for(identity, openings)
        old = pick_and_release(balancer)
        identity.current = renewed
        served_by = pick_and_release(balancer)
        assert served_by.identity.certificate_pem == renewed.certificate_pem
        assert [c.identity for c in openings.channels] == [first, renewed]
        assert openings.channels[-1] is served_by
        assert old.closed
        assert not served_by.closed

    def test_old_channel_closes_when_its_calls_end(self):
        """A call in flight during a renewal finishes on the channel of the old leaf, which
        is closed only once that call ends; the calls after it use the renewed leaf."""
        ca = DevCertificateAuthority()
        first, renewed = issue(ca), issue(ca)
        identity = Identity(first)
        balancer = balancer_for(identity)
        in_flight = balancer.pick()
        identity.current = renewed
        served_by = pick_and_release(balancer)
        assert in_flight.channel.identity.certificate_pem == first.certificate_pem
        assert served_by.identity.certificate_pem == renewed.certificate_pem
        assert not in_flight.channel.closed
        balancer.release(in_flight, connection_failed=False)
        assert in_flight.channel.closed
        assert not served_by.closed

    def test_call_counts_survive_a_renewal(self):
        """The endpoint keeps counting its calls across the reopened channel."""
        ca = DevCertificateAuthority()
        identity = Identity(issue(ca))
        balancer = balancer_for(identity)
        pick_and_release(balancer)
        identity.current = issue(ca)
        pick_and_release(balancer)
        assert balancer.call_counts() == {"127.0.0.1:50051": 2}
