"""The ways a method can fail, as its contract declares them.

A method's contract declares its own cases (the `(deptmesh.common.v1.errors)`
method option) and those of its service (`(deptmesh.common.v1.service_errors)`);
the mesh itself can refuse any call in the ways MESH_ERRORS lists (mesh.py).
`make check-protos` validates the declarations (rules.py, run as
`python -m deptmesh.sidecar.declared_errors IMAGE`).
"""

from __future__ import annotations

from google.protobuf.descriptor import MethodDescriptor

from deptmesh.common.v1 import errors_pb2
from deptmesh.sidecar.declared_errors.mesh import MESH_ERRORS

__all__ = ["MESH_ERRORS", "declared_errors"]


def declared_errors(method: MethodDescriptor) -> tuple[errors_pb2.ErrorCase, ...]:
    """The method's own declared cases, then its service's."""
    own = method.GetOptions().Extensions[errors_pb2.errors]
    shared = method.containing_service.GetOptions().Extensions[errors_pb2.service_errors]
    return (*own, *shared)
