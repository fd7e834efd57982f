"""A method's descriptor asked of the service itself, over server reflection.

For a service whose contract this installation does not carry: the server
sends its files (and what they import) through grpc.reflection.v1alpha, over
the same verified channel the call then uses.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from deptmesh.sidecar.contracts import MethodName

__all__ = ["reflected_method"]


def reflected_method(channel: grpc.Channel, name: MethodName) -> MethodDescriptor | None:
    """The method's descriptor as the server describes it; None when the server serves
    no such service or method. A failed reflection call raises its grpc.RpcError."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    try:
        service = pool.FindServiceByName(name.service)
    except KeyError:
        return None
    return service.methods_by_name.get(name.method)
