"""How fast the sidecar follows the catalog, against a real Consul dev agent (ACLs on, the
service's own token).

join:  registration of a new instance -> the first call routed to it
       (includes Consul's first gRPC health check turning it passing)
leave: the instance marked critical -> the last call routed to it

A client thread makes calls back to back through `deptmesh.sidecar.connect` the whole
time. The last line is for scripts:
discovery join_p50_ms=<n> join_max_ms=<n> leave_p50_ms=<n> leave_max_ms=<n>
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from collections.abc import Callable

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.logs import configure_logging
from tests.integration.servers import serve_employee_service
from tests.integration.test_deadlines import RecordingHr

SERVICE = "bench-discovery"


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> float:
    """Polls every millisecond; returns the monotonic time the condition held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.001)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    configure_logging("console", logging.WARNING)

    with DevAgent() as agent:
        token = agent.admin().department_token(SERVICE)
        registry = ConsulRegistry(agent.address, token=token.secret_id)
        anchor_server, anchor_address = serve_employee_service(RecordingHr())
        anchor = instance_of(SERVICE, "127.0.0.1", int(anchor_address.rpartition(":")[2]))
        registry.register(anchor)
        wait_until(lambda: registry.resolve(SERVICE))
        cache = EndpointCache(registry)
        channel = client.connect(SERVICE, cache)
        stub = hr_pb2_grpc.EmployeeServiceStub(channel)
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                stub.GetEmployee(hr_pb2.GetEmployeeRequest())

        caller = threading.Thread(target=load)
        caller.start()
        joins, leaves = [], []
        try:
            for trial in range(args.trials):
                server, address = serve_employee_service(RecordingHr())
                instance = instance_of(SERVICE, "127.0.0.1", int(address.rpartition(":")[2]))
                registered = time.monotonic()
                registry.register(instance)
                routed = wait_until(
                    lambda a=instance.endpoint: channel.balancer().call_counts().get(a, 0) > 0
                )
                joins.append((routed - registered) * 1000)

                critical = time.monotonic()
                registry.set_draining(instance.instance_id)
                gone = wait_until(
                    lambda a=instance.endpoint: a not in channel.balancer().call_counts()
                )
                leaves.append((gone - critical) * 1000)
                print(f"trial {trial + 1:2d}: join {joins[-1]:7.1f} ms  leave {leaves[-1]:7.1f} ms")
                registry.deregister(instance.instance_id)
                server.stop(0)
        finally:
            stop.set()
            caller.join()
            channel.close()
            cache.close()
            anchor_server.stop(0)

    print(
        f"discovery join_p50_ms={statistics.median(joins):.1f} join_max_ms={max(joins):.1f}"
        f" leave_p50_ms={statistics.median(leaves):.1f} leave_max_ms={max(leaves):.1f}"
    )


if __name__ == "__main__":
    main()
