"""Discovery and health: where every instance of a service is, and whether it is healthy.

`Registry` is the protocol (protocol.py); `ConsulRegistry` (consul.py) is the
only code that talks to Consul, `StaticRegistry` (static.py) the in-memory
twin with the same behaviour. `EndpointCache` (cache.py) keeps the instances
of the services a process calls current through blocking-query watches
(watch.py) and keeps serving the last known ones when the registry is
unreachable. `DevAgent` (agent.py) runs a local Consul dev agent.
"""

from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache, ServiceUnavailable
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import Health, ServiceInstance
from deptmesh.registry.protocol import Registry, RegistryUnavailable
from deptmesh.registry.static import StaticRegistry
from deptmesh.registry.watch import ServiceWatch, follow

__all__ = [
    "ConsulRegistry",
    "DevAgent",
    "EndpointCache",
    "Health",
    "Registry",
    "RegistryUnavailable",
    "ServiceInstance",
    "ServiceUnavailable",
    "ServiceWatch",
    "StaticRegistry",
    "follow",
]
