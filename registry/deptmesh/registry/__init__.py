"""Discovery and health: where every instance of a service is, and whether it is healthy.

`Registry` is the protocol (protocol.py); `ConsulRegistry` (consul.py) is the
only code that talks to Consul, `StaticRegistry` (static.py) the in-memory
twin with the same behaviour. `EndpointCache` (cache.py) keeps the instances
of the services a process calls current through blocking-query watches
(watch.py) and keeps serving the last known ones when the registry is
unreachable. `DevAgent` (agent.py) runs a local Consul dev agent and `ConsulCluster`
(cluster.py) a cluster of servers and client agents, both on 127.0.0.1 with
ACLs on (default deny); `AclAdmin` (acl.py) makes the policies and tokens a
mesh runs with: one per department, the platform's and monitoring's.
"""

from deptmesh.registry.acl import AclAdmin, MeshTokens, Token
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache, ServiceUnavailable
from deptmesh.registry.cluster import ConsulCluster
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import Health, ServiceInstance
from deptmesh.registry.protocol import (
    Registry,
    RegistryError,
    RegistryRefused,
    RegistryUnavailable,
)
from deptmesh.registry.static import StaticRegistry
from deptmesh.registry.watch import ServiceWatch, follow

__all__ = [
    "AclAdmin",
    "ConsulCluster",
    "ConsulRegistry",
    "DevAgent",
    "EndpointCache",
    "Health",
    "MeshTokens",
    "Registry",
    "RegistryError",
    "RegistryRefused",
    "RegistryUnavailable",
    "ServiceInstance",
    "ServiceUnavailable",
    "ServiceWatch",
    "StaticRegistry",
    "Token",
    "follow",
]
