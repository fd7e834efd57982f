"""Asking Consul, the control plane, from the sidecar.

The registry layer raises its own RegistryUnavailable; where the sidecar asks
Consul for something it cannot start without (a leaf, the policy, the replica
count), that failure becomes the error tree's ControlPlaneUnavailable, naming
what was being asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from deptmesh.registry.protocol import RegistryUnavailable
from deptmesh.sidecar.errors import ControlPlaneUnavailable

__all__ = ["asking_consul"]


@contextmanager
def asking_consul(what: str) -> Iterator[None]:
    """Runs the block; a RegistryUnavailable from it becomes ControlPlaneUnavailable."""
    try:
        yield
    except RegistryUnavailable as error:
        raise ControlPlaneUnavailable(f"{what}: {error}") from error
