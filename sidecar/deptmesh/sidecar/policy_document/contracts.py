"""Which methods the installed contracts declare, for checking a policy's method paths.

A contract of package `deptmesh.<name>.v<N>` is the generated Python package of
the same name (protos/deptmesh/<name>/v<N>/); its `*_pb2` modules are imported
on first need, and the method is looked up in protobuf's default descriptor
pool. Only packages under `deptmesh.` are imported: a path in a policy file
never makes this import an arbitrary installed module.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil
import re

from google.protobuf import descriptor_pool

__all__ = ["contract_declares"]

_CONTRACT_PACKAGE = re.compile(r"deptmesh\.[a-z][a-z0-9_]*\.v[0-9]+")


def contract_declares(method_path: str) -> bool:
    """Whether an installed deptmesh contract declares `/package.Service/Method`."""
    service, _, method = method_path.strip("/").partition("/")
    package = service.rpartition(".")[0]
    if not _CONTRACT_PACKAGE.fullmatch(package) or not _import_contract(package):
        return False
    try:
        descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return False
    return True


@functools.cache
def _import_contract(package: str) -> bool:
    """Imports the package's generated modules; False if no such package is installed."""
    try:
        spec = importlib.util.find_spec(package)
    except ImportError:  # a parent package is missing
        return False
    if spec is None or spec.submodule_search_locations is None:
        return False
    for module in pkgutil.iter_modules(spec.submodule_search_locations):
        if module.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{module.name}")
    return True
