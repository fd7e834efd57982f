"""Which database a store opens: a SQLite file, or a PostgreSQL server named by URL.

A database that cannot be opened is the department's start-up failing, so it
is said as the host says one (deptmesh.sidecar.host.StartupError): one line
naming `--db` and what to do, in place of sqlite3's or psycopg's traceback.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path
from typing import TypeGuard

import psycopg

from deptmesh.services.database._postgres import PostgresDatabase
from deptmesh.services.database._sqlite import SqliteDatabase
from deptmesh.services.database.schema import Schema
from deptmesh.services.database.time_limits import Timeouts
from deptmesh.services.database.transaction import Database
from deptmesh.sidecar.errors import Unavailable
from deptmesh.sidecar.host import StartupError

__all__ = ["DatabaseTarget", "DatabaseUnreachable", "is_postgres_url", "open_database"]

# What `--db` gives a department: a SQLite file's path, or a postgresql:// URL.
DatabaseTarget = str | Path

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class DatabaseUnreachable(Unavailable, StartupError):
    """The PostgreSQL server did not answer at start: UNAVAILABLE (DATABASE_UNREACHABLE)
    to a caller, and a start-up failure naming --db to the host."""


def is_postgres_url(target: DatabaseTarget) -> TypeGuard[str]:
    """True for a postgresql:// (or postgres://) URL; anything else is a SQLite file."""
    return isinstance(target, str) and target.startswith(_POSTGRES_SCHEMES)


def open_database(
    target: DatabaseTarget, schema: Schema, timeouts: Timeouts | None = None
) -> Database:
    """The database at `target`, migrated to `schema`'s latest version.

    Raises StartupError naming --db when it cannot be opened: a SQLite file in a
    folder that cannot be made or written, or that is not a database;
    DatabaseUnreachable (a StartupError too) for a PostgreSQL server that does
    not answer or refuses the connection.
    """
    limits = Timeouts() if timeouts is None else timeouts
    if is_postgres_url(target):
        try:
            return PostgresDatabase(target, schema, limits)
        except Unavailable as error:
            raise DatabaseUnreachable(
                f"--db {_shown(target)}: the PostgreSQL server could not be reached"
                f" ({_connection_failure(target)}); start it, or fix the URL",
                reason=error.reason,
                metadata=error.metadata,
            ) from error
    try:
        return SqliteDatabase(target, schema, limits)
    except OSError as error:  # the folder could not be made
        folder = Path(target).parent
        why = "is a file" if isinstance(error, FileExistsError) else error.strerror
        raise StartupError(
            f"--db {target}: its folder {folder} cannot be made ({why});"
            " give a path in a folder this user can write"
        ) from error
    except sqlite3.DatabaseError as error:  # OperationalError (cannot open, read-only) too
        if "not a database" in str(error):
            raise StartupError(
                f"--db {target} is not a SQLite database; give the department's own"
                " database file, or a new path for an empty one"
            ) from error
        raise StartupError(
            f"--db {target} cannot be used as a SQLite database ({error});"
            " give a file (not a folder) in a folder this user can write"
        ) from error


def _shown(url: str) -> str:
    """The URL without a password, should one be in it."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _connection_failure(url: str) -> str:
    """libpq's own reason, from one direct attempt: the pool only says it waited."""
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return first.removeprefix("connection failed: ") or type(error).__name__
    return "it answers now: it was starting"
