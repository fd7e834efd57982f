"""The span attributes deptmesh records, beyond OpenTelemetry's RPC conventions.

Server and client spans carry the semantic-convention attributes (rpc.system,
rpc.service, rpc.method, rpc.grpc.status_code, server.address, server.port,
network.peer.address, network.peer.port) plus these, so that a trace says who
called whom as which verified identity, and what the call was about.
"""

from __future__ import annotations

__all__ = [
    "CALLEE_DEPARTMENT",
    "CALLEE_SERVICE",
    "CALLEE_SPIFFE_ID",
    "CALLER_DEPARTMENT",
    "CALLER_SERVICE",
    "CALLER_SPIFFE_ID",
    "DEADLINE_REMAINING",
    "DENIED_EVENT",
    "KEY_PREFIX",
    "REASON",
    "SERVICE",
    "THROTTLED_EVENT",
]

# The verified identity of the caller (server spans) and of the callee (client spans).
CALLER_SPIFFE_ID = "deptmesh.caller.spiffe_id"
CALLER_SERVICE = "deptmesh.caller.service"
CALLER_DEPARTMENT = "deptmesh.caller.department"
CALLEE_SPIFFE_ID = "deptmesh.callee.spiffe_id"
CALLEE_SERVICE = "deptmesh.callee.service"
CALLEE_DEPARTMENT = "deptmesh.callee.department"
# The service whose process recorded the span, where the resource does not say
# (a span's own service is its resource's service.name).
SERVICE = "deptmesh.service"
# Seconds the caller's deadline left when the call arrived (server) or was sent (client).
DEADLINE_REMAINING = "deptmesh.deadline.remaining_s"
# What a call is about, by business key: `deptmesh.key.<name>` = the key's value (a
# string, or a sequence of them when one call carries several), so that
# `deptmesh trace --tag <name>=<value>` finds its trace (tracing/tags.py).
KEY_PREFIX = "deptmesh.key."

# Span events: a call refused by the chain, with the reason.
DENIED_EVENT = "deptmesh.denied"
THROTTLED_EVENT = "deptmesh.throttled"
REASON = "deptmesh.reason"
