"""The installed contracts as the command names them (deptmesh.sidecar.contracts, where
they moved so that the API reference, below the command, finds them the same way)."""

from deptmesh.sidecar.contracts import Contracts, MethodName, parse_method_name

__all__ = ["Contracts", "MethodName", "parse_method_name"]
