"""What the sidecar costs, against bare grpc.aio on the same mTLS, in one run: its server
chain, and its asyncio service channel as a client.

Each server configuration is a grpc.aio server in its own process serving hr's
GetEmployee over mTLS (dev CA certificates); this process is the client, over a
bare grpc.aio channel. A client configuration calls one of those servers
through the sidecar's own channel instead. Rounds alternate between the
configurations so that drift in the machine hits them all alike. Three
measures per configuration:

- throughput: calls per second with 32 unary calls in flight;
- latency: the median of calls made one at a time, the configurations taking
  turns of LATENCY_TURN calls; a configuration's median minus bare grpc's is
  the latency the sidecar adds per hop;
- server CPU per call during the throughput rounds (user + system time of the
  server's process, from /proc), which varies less between runs than
  throughput on a shared machine.

    python -m bench.overhead [--rounds N] [--seconds S] [--latency-calls N]

Configurations: bare grpc.aio; `authz`, the sidecar with identity and
authorization; `quota`, adding usage metering and quota enforcement; `full`,
everything a department runs (tracing at 100% to the local trace store, the
access log to a file, usage counted per minute for the ledger, metrics,
authorization, quota); `sampled1`, the same at 1% sampling; `otel_contrib`, bare
grpc.aio with opentelemetry-instrumentation-grpc alone, for comparison; `floor`,
not a product configuration but the ceiling of any chain with the sidecar's
duties: one stage that only asks grpc what such a chain must ask per call (the
peer's certificate for identity, the metadata for trace headers, the trailing
quota metadata) and sets one context variable, deciding nothing. And one client
configuration: `aio_connect`, the bare server called through
`deptmesh.sidecar.aio_connect` (registry cache, balancer, deadline and retry
rules, mTLS; no tracing) instead of a bare grpc.aio channel;
its ratio is the client chain's cost, its server CPU is bare's.

The last line is for scripts: `overhead full=<ratio> sampled1=<ratio>
otel_contrib=<ratio> p50_added_us=<n>`: throughput over bare grpc.aio's, and the
median latency `full` adds per hop with one call in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from bench.overhead_servers import (
    CALLER,
    CLIENT_CONFIGURATIONS,
    CONFIGURATIONS,
    SERVER,
    SUMMARY,
    serve,
)
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import aio_connect
from deptmesh.sidecar.identity.dev_ca import DevCertificateAuthority
from deptmesh.sidecar.identity.sources import ServerIdentity
from deptmesh.sidecar.identity.spiffe import server_name

CONCURRENCY = 32


@dataclass
class Measured:
    throughput: list[float] = field(default_factory=list)
    latency_us: list[float] = field(default_factory=list)
    cpu_us_per_call: list[float] = field(default_factory=list)


def _cpu_seconds(pid: int) -> float:
    """User + system time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Caller:
    """How this process calls the servers: bare grpc.aio's credentials and target name,
    and the sidecar channel's identity."""

    credentials: grpc.ChannelCredentials
    target: str
    identity: ServerIdentity


def _write_certificates(directory: Path) -> Caller:
    ca = DevCertificateAuthority()
    server_leaf, client_leaf = ca.issue(SERVER), ca.issue(CALLER)
    (directory / "ca.pem").write_bytes(ca.ca_pem)
    (directory / "server.key").write_bytes(server_leaf.private_key_pem)
    (directory / "server.pem").write_bytes(server_leaf.certificate_pem)
    (directory / "trust-domain").write_text(ca.trust_domain)
    credentials = grpc.ssl_channel_credentials(
        ca.ca_pem, client_leaf.private_key_pem, client_leaf.certificate_pem
    )
    identity = ServerIdentity(
        client_leaf.private_key_pem, client_leaf.certificate_pem, ca.ca_pem, ca.trust_domain
    )
    return Caller(credentials, server_name(SERVER, ca.trust_domain), identity)


def _start_server(name: str, certs: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.overhead", "serve", name, str(certs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = process.stdout.readline().strip()
    if not port.isdigit():
        process.kill()
        raise RuntimeError(f"the {name} server did not start")
    return process, f"127.0.0.1:{port}"


async def _throughput(stub: hr_pb2_grpc.EmployeeServiceStub, seconds: float) -> float:
    request = hr_pb2.GetEmployeeRequest(employee_id="E1001")
    stop_at = time.perf_counter() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await stub.GetEmployee(request, timeout=10)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


# Consecutive calls to one configuration in its turn of the latency round: a caller
# with one call in flight calls the same server again and again, and taking turns
# call by call instead would measure each server as cold as the number of
# configurations makes it.
LATENCY_TURN = 50


async def _median_latencies_us(
    stubs: dict[str, hr_pb2_grpc.EmployeeServiceStub], calls: int
) -> dict[str, float]:
    """Median latency of one call in flight, per configuration. The configurations take
    short turns (LATENCY_TURN calls), so that whatever the machine does meanwhile hits
    them alike."""
    request = hr_pb2.GetEmployeeRequest(employee_id="E1001")
    samples: dict[str, list[float]] = {name: [] for name in stubs}
    for _ in range(0, calls, LATENCY_TURN):
        for name, stub in stubs.items():
            for _ in range(LATENCY_TURN):
                started = time.perf_counter_ns()
                await stub.GetEmployee(request, timeout=10)
                samples[name].append((time.perf_counter_ns() - started) / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def _sidecar_channel(address: str, identity: ServerIdentity) -> tuple[Any, EndpointCache]:
    """An aio_connect channel to `address`, known to a registry as SERVER's one instance."""
    host, _, port = address.rpartition(":")
    cache = EndpointCache(StaticRegistry([ServiceInstance(SERVER, SERVER, host, int(port))]))
    return aio_connect(SERVER, cache, identity=lambda: identity), cache


async def _measure(
    addresses: dict[str, str],
    pids: dict[str, int],
    caller: Caller,
    arguments: argparse.Namespace,
) -> dict[str, Measured]:
    options = [("grpc.ssl_target_name_override", caller.target)]
    channels: dict[str, Any] = {}
    caches = []
    pids = dict(pids)
    for server, address in addresses.items():
        channels[server] = grpc.aio.secure_channel(address, caller.credentials, options=options)
        for name in (name for name, calls in CLIENT_CONFIGURATIONS.items() if calls == server):
            channels[name], cache = _sidecar_channel(address, caller.identity)
            caches.append(cache)
            pids[name] = pids[server]
    stubs = {name: hr_pb2_grpc.EmployeeServiceStub(channel) for name, channel in channels.items()}
    results = {name: Measured() for name in channels}
    for stub in stubs.values():  # connect and warm up before anything is timed
        await _throughput(stub, 0.3)
    for _ in range(arguments.rounds):
        for name, stub in stubs.items():
            cpu_before = _cpu_seconds(pids[name])
            throughput = await _throughput(stub, arguments.seconds)
            calls = throughput * arguments.seconds
            cpu_us = (_cpu_seconds(pids[name]) - cpu_before) / calls * 1e6
            results[name].throughput.append(throughput)
            results[name].cpu_us_per_call.append(cpu_us)
        latencies = await _median_latencies_us(stubs, arguments.latency_calls)
        for name, latency in latencies.items():
            results[name].latency_us.append(latency)
    for channel in channels.values():
        await channel.close()
    for cache in caches:
        cache.close()
    return results


def _report(results: dict[str, Measured]) -> None:
    baseline_name = next(iter(results))
    baseline = results[baseline_name]
    base_throughput = statistics.median(baseline.throughput)
    base_latency = statistics.median(baseline.latency_us)
    base_cpu = statistics.median(baseline.cpu_us_per_call)
    print(f"{CONCURRENCY} calls in flight; rounds alternate; medians over rounds")
    print(
        f"{'configuration':<14}{'calls/s':>10}{'ratio':>8}{'p50 us':>9}{'added us':>10}"
        f"{'server cpu us/call':>20}{'added':>7}"
    )
    summary = {}
    for name, measured in results.items():
        throughput = statistics.median(measured.throughput)
        latency = statistics.median(measured.latency_us)
        cpu = statistics.median(measured.cpu_us_per_call)
        ratio = throughput / base_throughput
        added = latency - base_latency
        print(
            f"{name:<14}{throughput:>10.0f}{ratio:>8.3f}{latency:>9.0f}{added:>10.0f}"
            f"{cpu:>20.0f}{cpu - base_cpu:>7.0f}"
        )
        if name in SUMMARY:
            summary[name] = f"{ratio:.3f}"
        if name == "full":
            added_by_full = f"{added:.0f}"
    summary["p50_added_us"] = added_by_full
    print("overhead " + " ".join(f"{key}={value}" for key, value in summary.items()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2.0, help="per throughput round")
    parser.add_argument("--latency-calls", type=int, default=1000, help="per latency round")
    arguments, rest = parser.parse_known_args()
    if rest[:1] == ["serve"]:
        asyncio.run(serve(rest[1], Path(rest[2])))
        return
    with tempfile.TemporaryDirectory() as directory:
        certs = Path(directory)
        caller = _write_certificates(certs)
        servers = {name: _start_server(name, certs) for name in CONFIGURATIONS}
        try:
            addresses = {name: address for name, (_, address) in servers.items()}
            pids = {name: process.pid for name, (process, _) in servers.items()}
            results = asyncio.run(_measure(addresses, pids, caller, arguments))
        finally:
            for process, _ in servers.values():
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=30)
    _report(results)


if __name__ == "__main__":
    main()
