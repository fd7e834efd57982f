"""Asking the usage ledger from the command line: the `metering` department's
UsageLedgerService, called as a mesh identity (deptmesh.sidecar.cli.acting_as), and which
departments a command asks about.

The ledger lets the platform's identity read every department's usage and a
department only its own; so without --department, `platform` asks about every
department of the policy in force (deptmesh/policy/departments, else the
catalog's services) and any other identity about itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

import grpc

from deptmesh.metering.v1 import metering_pb2_grpc
from deptmesh.registry.acl import PLATFORM_IDENTITY, POLICY_PREFIX
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryError
from deptmesh.sidecar.channel import connect
from deptmesh.sidecar.cli.acting_as import EXIT_FAILED, CommandRefused, ConsulAccess, leaf_of
from deptmesh.sidecar.cli.details import explain_failure

__all__ = ["LEDGER_SERVICE", "Ledger", "asked", "departments_to_ask", "open_ledger"]

# The usage ledger's department (its Consul service name and SPIFFE identity).
LEDGER_SERVICE = "metering"
_DEPARTMENTS_KEY = f"{POLICY_PREFIX}departments"

Reply = TypeVar("Reply")


class Ledger:
    """The ledger's stub and the registry of the identity asking it."""

    def __init__(self, registry: ConsulRegistry, stub: Any, timeout: float) -> None:
        self.registry = registry
        self.stub = stub
        self.timeout = timeout


def open_ledger(identity: str, access: ConsulAccess, timeout: float, opened: ExitStack) -> Ledger:
    """A ledger stub presenting `identity`'s leaf, closed with `opened`; CommandRefused
    when the leaf cannot be had."""
    registry, leaf = leaf_of(identity, access, opened)
    cache = EndpointCache(registry)
    opened.callback(cache.close)
    channel = opened.enter_context(
        connect(LEDGER_SERVICE, cache, identity=leaf, default_timeout=timeout)
    )
    return Ledger(registry, metering_pb2_grpc.UsageLedgerServiceStub(channel), timeout)


def asked(call: Callable[..., Reply], request: object, timeout: float, what: str) -> Reply:
    """The ledger's answer, or CommandRefused saying what was asked and why it failed."""
    try:
        return call(request, timeout=timeout)
    except grpc.RpcError as error:
        first, *details = explain_failure(error)
        raise CommandRefused("\n".join([f"{what}: {first}", *details]), EXIT_FAILED) from None


def departments_to_ask(ledger: Ledger, identity: str, department: str | None) -> list[str]:
    """--department, else every department (for the platform) or the identity itself."""
    if department is not None:
        return [department]
    if identity != PLATFORM_IDENTITY:
        return [identity]
    try:
        _, text = ledger.registry.kv_entry(_DEPARTMENTS_KEY)
        if text is not None:
            return sorted(json.loads(text)["departments"])
        return sorted({instance.service for instance in ledger.registry.services()})
    except (RegistryError, ValueError, KeyError, TypeError) as error:
        raise CommandRefused(
            f"cannot list the departments ({error}): give --department", EXIT_FAILED
        ) from None
