"""Asking Consul, the control plane, from the sidecar.

The registry layer raises its own RegistryUnavailable (Consul could not be
asked) and RegistryRefused (Consul refused the token); where the sidecar asks
Consul for something it cannot start without (a leaf, the policy, the replica
count, the registration), they become the error tree's ControlPlaneUnavailable
and ControlPlaneRefused, naming what was being asked for. Neither message ever
holds the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from deptmesh.registry.protocol import RegistryRefused, RegistryUnavailable
from deptmesh.sidecar.errors import ControlPlaneRefused, ControlPlaneUnavailable

__all__ = ["asking_consul"]


@contextmanager
def asking_consul(what: str) -> Iterator[None]:
    """Runs the block; RegistryUnavailable from it becomes ControlPlaneUnavailable and
    RegistryRefused ControlPlaneRefused."""
    try:
        yield
    except RegistryRefused as error:
        # The registry's message already says what Consul refused, and why.
        raise ControlPlaneRefused(str(error)) from error
    except RegistryUnavailable as error:
        raise ControlPlaneUnavailable(f"{what}: {error}") from error
