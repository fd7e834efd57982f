"""Fixtures shared by every tier: logs captured per test, never a fixed port, and the
databases of both backends (a SQLite file, a PostgreSQL server of the run's own)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.postgres import BACKENDS, PostgresServer


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """This run's PostgreSQL server, started when a test first needs it, stopped and
    removed at the end (tests/postgres.py)."""
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database of this run's server."""
    return postgres_server.create_database()


@pytest.fixture(params=BACKENDS)
def database_target(request: pytest.FixtureRequest, tmp_path) -> object:
    """A fresh database on each backend in turn: a SQLite file's path, then a PostgreSQL
    database's URL (what --db takes)."""
    if request.param == "sqlite":
        return tmp_path / "store.db"
    return request.getfixturevalue("postgres_url")
