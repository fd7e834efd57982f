"""Fixtures shared by every tier: logs captured per test, never a fixed port."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def trace_store_of_this_run(tmp_path_factory) -> Iterator[None]:
    """Service processes the tests start keep their spans in this run's own trace store,
    never in the user's."""
    path = tmp_path_factory.mktemp("traces") / "traces.sqlite"
    previous = os.environ.get("DEPTMESH_TRACE_STORE")
    os.environ["DEPTMESH_TRACE_STORE"] = str(path)
    yield
    if previous is None:
        del os.environ["DEPTMESH_TRACE_STORE"]
    else:
        os.environ["DEPTMESH_TRACE_STORE"] = previous
