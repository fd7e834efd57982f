"""Which database a store opens: a SQLite file, or a PostgreSQL server named by URL."""

from __future__ import annotations

from pathlib import Path
from typing import TypeGuard

from deptmesh.services.database._postgres import PostgresDatabase
from deptmesh.services.database._sqlite import SqliteDatabase
from deptmesh.services.database.schema import Schema
from deptmesh.services.database.time_limits import Timeouts
from deptmesh.services.database.transaction import Database

__all__ = ["DatabaseTarget", "is_postgres_url", "open_database"]

# What `--db` gives a department: a SQLite file's path, or a postgresql:// URL.
DatabaseTarget = str | Path

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: DatabaseTarget) -> TypeGuard[str]:
    """True for a postgresql:// (or postgres://) URL; anything else is a SQLite file."""
    return isinstance(target, str) and target.startswith(_POSTGRES_SCHEMES)


def open_database(
    target: DatabaseTarget, schema: Schema, timeouts: Timeouts | None = None
) -> Database:
    """The database at `target`, migrated to `schema`'s latest version."""
    limits = Timeouts() if timeouts is None else timeouts
    if is_postgres_url(target):
        return PostgresDatabase(target, schema, limits)
    return SqliteDatabase(target, schema, limits)
