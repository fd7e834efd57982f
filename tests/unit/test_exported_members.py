"""The public faces: deptmesh.sidecar exports what a service team needs, and every
module's __all__ is sorted and true."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import deptmesh.registry
import deptmesh.services
import deptmesh.sidecar

# What a service team imports: servers, channels, the caller, tracing, the error
# tree its handlers raise, and the host that runs a department.
FACE = [
    "AioServer",
    "AioServiceChannel",
    "AlreadyExists",
    "Caller",
    "Closer",
    "Department",
    "FailedPrecondition",
    "FieldViolation",
    "HostContext",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "Server",
    "ServiceChannel",
    "ServiceError",
    "Tracing",
    "Unavailable",
    "aio_connect",
    "connect",
    "current_caller",
    "run_department",
    "tag_current_call",
]


def _modules() -> list[ModuleType]:
    found = []
    for package in (deptmesh.sidecar, deptmesh.registry, deptmesh.services):
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.endswith("__main__"):
                continue  # running it is its only job
            found.append(importlib.import_module(info.name))
    return found


MODULES = _modules()


class TestSidecarFace:
    def test_exports_exactly_what_a_service_team_needs(self):
        """deptmesh.sidecar.__all__ is the list of the names a service uses."""
        assert deptmesh.sidecar.__all__ == FACE

    def test_every_name_is_the_sidecars_own(self):
        """Each exported name exists and is defined by the sidecar, not re-exported from
        a dependency."""
        for name in FACE:
            value = getattr(deptmesh.sidecar, name)
            if inspect.isclass(value) or inspect.isfunction(value):  # not a type alias
                assert value.__module__.startswith("deptmesh.sidecar."), name

    def test_nothing_public_is_left_out(self):
        """Every public, non-module name the face binds is in __all__."""
        bound = {
            name
            for name, value in vars(deptmesh.sidecar).items()
            if not name.startswith("_") and not isinstance(value, ModuleType)
        }
        assert bound == set(FACE)


def _isort_order(name: str) -> tuple[int, str]:
    """ruff's order for __all__ (RUF022): CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_all_is_sorted_and_true(module):
    """A module's __all__, where it has one, is sorted and names only what it binds."""
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert list(exported) == sorted(exported, key=_isort_order)
    assert [name for name in exported if not hasattr(module, name)] == []
