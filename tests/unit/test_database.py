"""deptmesh.services.database on a real SQLite file and a real PostgreSQL database:
migrations, and waits bounded by the call's deadline."""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from deptmesh.services.database import Schema, Timeouts, open_database
from deptmesh.services.database.time_limits import WAIT_SHARE
from deptmesh.sidecar.deadline.budget import set_inbound_deadline
from deptmesh.sidecar.errors import DeadlineExceeded, Unavailable
from tests.databases import RawConnection

NOTES = Schema("notes", ("CREATE TABLE notes (id {auto_id}, text TEXT NOT NULL UNIQUE)",))
NOTES_V2 = Schema("notes", (*NOTES.migrations, "ALTER TABLE notes ADD COLUMN author TEXT"))


def in_a_call(seconds, work, *args):
    """Runs work(*args) as a handler would, with `seconds` left of its call's deadline."""

    def call():
        set_inbound_deadline(time.monotonic() + seconds)
        return work(*args)

    return contextvars.copy_context().run(call)


def add_note(database, text):
    with database.write() as tx:
        tx.execute("INSERT INTO notes (text) VALUES (?)", (text,))


def notes(database):
    with database.read() as tx:
        return [row["text"] for row in tx.fetch_all("SELECT text FROM notes ORDER BY id")]


@pytest.fixture
def database(database_target):
    database = open_database(database_target, NOTES)
    yield database
    database.close()


@pytest.fixture
def raw(database, database_target):
    """Another replica's connection to the same database."""
    connection = RawConnection(database_target)
    yield connection
    connection.close()


class TestMigrations:
    def test_a_new_database_gets_every_migration_once(self, database_target):
        """Opening applies the schema and records its version; reopening applies nothing."""
        first = open_database(database_target, NOTES)
        add_note(first, "kept")
        first.close()

        again = open_database(database_target, NOTES)
        try:
            assert notes(again) == ["kept"]
            with again.read() as tx:
                row = tx.fetch_one(
                    "SELECT version FROM schema_versions WHERE schema_name = 'notes'"
                )
            assert row["version"] == 1
        finally:
            again.close()

    def test_a_later_migration_is_applied_to_an_existing_database(self, database_target):
        """Code with a new migration brings an older database up to date, keeping its rows."""
        open_database(database_target, NOTES).close()
        add_note(older := open_database(database_target, NOTES), "before")
        older.close()

        newer = open_database(database_target, NOTES_V2)
        try:
            with newer.write() as tx:
                tx.execute("UPDATE notes SET author = ? WHERE text = ?", ("ada", "before"))
                assert tx.fetch_one("SELECT author FROM notes")["author"] == "ada"
        finally:
            newer.close()

    def test_a_database_of_newer_code_is_refused(self, database_target):
        """Older code does not guess at a schema version it does not know."""
        open_database(database_target, NOTES_V2).close()

        with pytest.raises(RuntimeError, match="version 2 of the notes schema"):
            open_database(database_target, NOTES)

    def test_replicas_starting_at_once_migrate_one_after_the_other(self, database_target):
        """Six stores opening one new database together all open it, and it has one schema."""
        barrier = threading.Barrier(6)

        def open_one(_):
            barrier.wait(timeout=10)
            return open_database(database_target, NOTES)

        with ThreadPoolExecutor(6) as pool:
            opened = list(pool.map(open_one, range(6)))
        add_note(opened[0], "one")
        assert [notes(database) for database in opened] == [["one"]] * 6
        for database in opened:
            database.close()

    @pytest.mark.parametrize("name", ["", "Finance", "drop table", "x" * 64])
    def test_schema_names_are_identifiers(self, name):
        """A schema is named by a short lower-case identifier."""
        with pytest.raises(ValueError, match="schema name"):
            Schema(name, NOTES.migrations)


class TestDeadlines:
    def test_a_held_lock_is_unavailable_within_the_deadline(self, database, raw):
        """A write that meets another connection's lock fails UNAVAILABLE (DATABASE_BUSY)
        once its share of the call's time is spent, not later, and writes nothing."""
        raw.hold_write_lock("notes")
        started = time.monotonic()
        try:
            with pytest.raises(Unavailable) as raised:
                in_a_call(1.0, add_note, database, "blocked")
        finally:
            raw.rollback()
        waited = time.monotonic() - started

        assert raised.value.reason == "DATABASE_BUSY"
        assert 1.0 * WAIT_SHARE * 0.9 <= waited < 1.0
        assert notes(database) == []

    def test_outside_a_call_the_wait_has_the_databases_own_limit(self, database_target, raw):
        """Without a call's deadline, a transaction waits max_lock_wait_seconds."""
        database = open_database(database_target, NOTES, Timeouts(max_lock_wait_seconds=0.3))
        raw.hold_write_lock("notes")
        started = time.monotonic()
        try:
            with pytest.raises(Unavailable):
                add_note(database, "blocked")
        finally:
            raw.rollback()
            database.close()
        assert 0.25 <= time.monotonic() - started < 2.0

    def test_the_wait_ends_when_the_lock_is_released(self, database, raw):
        """A transaction that waited for a lock goes on once the holder is done."""
        raw.hold_write_lock("notes")
        waiting = threading.Thread(target=in_a_call, args=(10, add_note, database, "after"))
        waiting.start()
        if raw.postgres:  # SQLite does not show who waits for its lock
            deadline = time.monotonic() + 5
            while not raw.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
                assert time.monotonic() < deadline, "the write never waited for the lock"
                time.sleep(0.01)
        raw.rollback()
        waiting.join(timeout=10)

        assert notes(database) == ["after"]

    def test_reads_wait_for_no_writer(self, database, raw):
        """A held write lock does not keep a read from answering."""
        add_note(database, "readable")
        raw.hold_write_lock("notes")
        try:
            assert in_a_call(0.5, notes, database) == ["readable"]
        finally:
            raw.rollback()

    def test_a_commit_past_the_deadline_is_rolled_back(self, database):
        """Work whose deadline passed before its commit (a stalled process) is rolled back:
        DEADLINE_EXCEEDED, and nothing of it is written."""

        def stalled_write():
            with database.write() as tx:
                tx.execute("INSERT INTO notes (text) VALUES (?)", ("too late",))
                # The process stalls here until the call's deadline has passed.
                set_inbound_deadline(time.monotonic() - 0.001)

        with pytest.raises(DeadlineExceeded) as raised:
            in_a_call(5, stalled_write)

        assert raised.value.reason == "DEADLINE_PASSED_BEFORE_COMMIT"
        assert notes(database) == []

    def test_no_transaction_begins_after_the_deadline(self, database):
        """A call whose deadline has passed does not start a transaction."""
        with pytest.raises(DeadlineExceeded):
            in_a_call(-0.1, add_note, database, "never")
        assert notes(database) == []

    @pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
    def test_timeouts_are_positive_and_finite(self, seconds):
        """A limit that is not a positive number of seconds is refused."""
        with pytest.raises(ValueError, match="positive"):
            Timeouts(max_lock_wait_seconds=seconds)


class TestPostgresSessions:
    @pytest.fixture
    def url(self, postgres_url):
        return postgres_url

    def test_a_frozen_holder_is_ended_by_the_server(self, url):
        """A replica frozen inside a transaction loses it after idle_in_transaction_seconds:
        its locks go, another replica writes, and the frozen one's commit is UNAVAILABLE
        with nothing of it written."""
        timeouts = Timeouts(max_lock_wait_seconds=5.0, idle_in_transaction_seconds=0.3)
        frozen, other = (open_database(url, NOTES, timeouts) for _ in range(2))
        holding, thaw = threading.Event(), threading.Event()
        outcome: list[BaseException] = []

        def freeze_while_holding():
            try:
                with frozen.write() as tx:
                    tx.execute("LOCK TABLE notes IN EXCLUSIVE MODE")
                    tx.execute("INSERT INTO notes (text) VALUES (?)", ("frozen",))
                    holding.set()
                    thaw.wait(10)
            except Unavailable as error:
                outcome.append(error)

        holder = threading.Thread(target=freeze_while_holding)
        holder.start()
        try:
            assert holding.wait(10)
            started = time.monotonic()
            add_note(other, "other")
            assert time.monotonic() - started < 3.0
        finally:
            thaw.set()
            holder.join(10)
        try:
            assert [error.reason for error in outcome] == ["DATABASE_UNREACHABLE"]
            assert notes(other) == ["other"]
            add_note(frozen, "the pool replaced the lost connection")
        finally:
            frozen.close()
            other.close()

    def test_a_server_unreachable_at_start_is_unavailable(self):
        """Opening a database whose server does not answer fails UNAVAILABLE
        (DATABASE_UNREACHABLE) within the wait limit."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"postgresql://nobody@127.0.0.1:{probe.getsockname()[1]}/nothing"
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            open_database(url, NOTES, Timeouts(max_lock_wait_seconds=0.3))
        assert raised.value.reason == "DATABASE_UNREACHABLE"
        assert time.monotonic() - started < 3.0

    def test_a_connection_the_server_closed_is_replaced(self, url, postgres_server):
        """After the server ends every session (a restart, a failover), the next
        transaction gets a working connection."""
        database = open_database(url, NOTES)
        try:
            add_note(database, "before")
            with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (url.split("application_name=")[1].split("&")[0],),
                ).fetchone()
            assert ended is not None
            assert ended[0] >= 1
            add_note(database, "after")
            assert notes(database) == ["before", "after"]
        finally:
            database.close()

    def test_a_deadlock_is_unavailable(self, url):
        """Of two transactions that wait for each other, the one the server ends fails
        UNAVAILABLE (DATABASE_CONFLICT); the other commits."""
        database = open_database(url, NOTES)
        add_note(database, "a")
        add_note(database, "b")
        both_locked = threading.Barrier(2)

        def lock_in_order(first, second):
            try:
                with database.write() as tx:
                    tx.fetch_one("SELECT * FROM notes WHERE text = ?", (first,), for_update=True)
                    both_locked.wait(10)
                    tx.fetch_one("SELECT * FROM notes WHERE text = ?", (second,), for_update=True)
            except Unavailable as error:
                return error.reason
            return "committed"

        try:
            with ThreadPoolExecutor(2) as pool:
                outcomes = sorted(pool.map(lock_in_order, ["a", "b"], ["b", "a"]))
        finally:
            database.close()
        assert outcomes == ["DATABASE_CONFLICT", "committed"]
