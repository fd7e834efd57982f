"""The balancer ejects an endpoint whose connection failed, once per episode."""

from __future__ import annotations

from deptmesh.sidecar.channel.balancer import Balancer

EJECT = 1.0  # seconds of a first ejection
ADDRESSES = ("127.0.0.1:1", "127.0.0.1:2")


class Channel:
    def __init__(self, address: str) -> None:
        self.address = address

    def close(self) -> None:
        return None


class Clock:
    """time.monotonic as the test sets it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def balancer(clock: Clock) -> Balancer:
    balancer = Balancer("finance", Channel, eject_seconds=EJECT, clock=clock)
    balancer.update(list(ADDRESSES))
    return balancer


def ejected_for(balancer: Balancer, clock: Clock, address: str) -> float:
    endpoint = balancer.endpoint(address)
    assert endpoint is not None
    return endpoint.ejected_until - clock.now


def pick(endpoints: Balancer, address: str):
    """A call on `address`: the balancer is asked to avoid the other endpoint."""
    endpoint = endpoints.pick(avoid=[other for other in ADDRESSES if other != address])
    assert endpoint.address == address
    return endpoint


class TestEjection:
    def test_concurrent_failures_eject_once(self):
        """Thirty calls in flight when both endpoints went, failing one after the other
        over 60 ms, eject each endpoint for the first backoff, not for a backoff doubled
        once per failure."""
        clock = Clock()
        endpoints = balancer(clock)
        in_flight = [endpoints.pick() for _ in range(30)]
        for endpoint in in_flight:
            clock.now += 0.002
            endpoints.release(endpoint, connection_failed=True)
        for address in ADDRESSES:
            assert 0 < ejected_for(endpoints, clock, address) <= EJECT

    def test_a_failure_after_readmission_doubles_the_backoff(self):
        """An endpoint that fails again once its ejection is over is ejected twice as long."""
        clock = Clock()
        endpoints = balancer(clock)
        endpoints.release(pick(endpoints, ADDRESSES[0]), connection_failed=True)
        clock.now += EJECT  # readmitted
        endpoints.release(pick(endpoints, ADDRESSES[0]), connection_failed=True)
        assert ejected_for(endpoints, clock, ADDRESSES[0]) == 2 * EJECT

    def test_a_success_resets_the_backoff(self):
        """After a call on the readmitted endpoint succeeds, its next failure is ejected for
        the first backoff again."""
        clock = Clock()
        endpoints = balancer(clock)
        endpoints.release(pick(endpoints, ADDRESSES[0]), connection_failed=True)
        clock.now += EJECT
        endpoints.release(pick(endpoints, ADDRESSES[0]), connection_failed=False)
        endpoints.release(pick(endpoints, ADDRESSES[0]), connection_failed=True)
        assert ejected_for(endpoints, clock, ADDRESSES[0]) == EJECT

    def test_an_ejected_endpoint_is_not_picked(self):
        """While one endpoint is ejected, calls go to the other."""
        clock = Clock()
        endpoints = balancer(clock)
        endpoints.release(pick(endpoints, ADDRESSES[0]), connection_failed=True)
        picked = {endpoints.pick().address for _ in range(20)}
        assert picked == {ADDRESSES[1]}
