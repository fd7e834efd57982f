"""A store's tables as migrations: the same ones, in the same order, on either database.

A store declares its schema once: `Schema("finance", (MIGRATION_1, MIGRATION_2,
...))`, each migration a script of statements separated by `;` (none inside a
statement), written in the portable SQL of dialects.py. Opening a database
applies the migrations it has not had yet, in one transaction, and records the
version reached in `schema_versions` under the schema's name (several stores may
share a PostgreSQL database). Replicas that start at once migrate one after the
other; a database migrated by newer code than this is refused, not guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deptmesh.services.database.transaction import Database

__all__ = ["Schema", "migrate"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")

_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " schema_name TEXT PRIMARY KEY, version BIGINT NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Schema:
    """A store's name and its migrations, oldest first (version n is migrations[n - 1])."""

    name: str
    migrations: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"schema name {self.name!r} must be a lower-case identifier")
        if not self.migrations:
            raise ValueError(f"schema {self.name!r} has no migrations")

    @property
    def version(self) -> int:
        return len(self.migrations)


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def migrate(database: Database, schema: Schema) -> None:
    """Brings the database to the schema's latest version."""
    with database.write() as tx:
        if tx.dialect.schema_lock:
            tx.execute(tx.dialect.schema_lock)
        tx.execute(_VERSIONS)
        row = tx.fetch_one(
            "SELECT version FROM schema_versions WHERE schema_name = ?", (schema.name,)
        )
        current = 0 if row is None else int(row["version"])
        if current > schema.version:
            raise RuntimeError(
                f"the database holds version {current} of the {schema.name} schema;"
                f" this code knows versions up to {schema.version} only"
            )
        for migration in schema.migrations[current:]:
            for statement in _statements(migration):
                tx.execute(tx.dialect.ddl(statement))
        if current < schema.version:
            tx.execute(
                "INSERT INTO schema_versions (schema_name, version) VALUES (?, ?)"
                " ON CONFLICT (schema_name) DO UPDATE SET version = excluded.version",
                (schema.name, schema.version),
            )
