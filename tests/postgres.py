"""A throwaway PostgreSQL server for the tests, and the database targets of both backends.

The server programs come from scripts/install-postgresql (the machine's own, or
Debian's package fetched into .tools/): a machine without them gets them, and a
failed install fails the run, never skips it. One server per test session, on a
free port of 127.0.0.1, in its own temporary directory; PostgreSQL refuses to
run as root, so under root it runs as `nobody`, which owns that directory. Each
test gets a fresh, empty database of its own: a new schema, first on the
search_path its URL sets, in the server's one test database (CREATE SCHEMA
takes well under a millisecond; CREATE DATABASE, 0.1 to 0.4 s here, would add
half a minute to the run). Its URL also names it as the application, for a
test that looks its sessions up. The server is stopped and its directory
removed at the end of the session, whatever the tests did.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from deptmesh.registry.children import start_child, tied_to_parent

__all__ = ["BACKENDS", "PostgresServer", "install_postgresql"]

BACKENDS = ("sqlite", "postgresql")

_REPOSITORY = Path(__file__).resolve().parent.parent
_INSTALLER = _REPOSITORY / "scripts" / "install-postgresql"
_UNPRIVILEGED_USER = "nobody"
_READY_SECONDS = 30.0
_DATABASE = "deptmesh_tests"


def install_postgresql() -> Path:
    """The directory of postgres, initdb and pg_ctl; fails the run if they cannot be had."""
    result = subprocess.run(
        [str(_INSTALLER)], capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/install-postgresql failed:\n{result.stderr}", pytrace=False)
    return Path(result.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class PostgresServer:
    """One running server: `create_database()` gives each test its own database's URL."""

    def __init__(
        self,
        directory: Path,
        process: subprocess.Popen[bytes],
        port: int,
        launch: Callable[[int], subprocess.Popen[bytes]],
    ) -> None:
        self.directory = directory
        self.port = port
        self._process = process
        self._launch = launch
        self._names = itertools.count(1)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{_DATABASE}"

    @classmethod
    def start(cls) -> PostgresServer:
        binaries = install_postgresql()
        # Not under pytest's own temporary directory: that is private to root.
        directory = Path(tempfile.mkdtemp(prefix="deptmesh-postgres-"))
        try:
            user = _as_unprivileged(directory)
            _run(
                [
                    binaries / "initdb",
                    *("-D", directory / "data", "-U", "postgres", "--auth=trust"),
                    *("--no-locale", "-E", "UTF8", "--no-sync"),
                ],
                directory,
                user,
            )
            return cls._start_on_a_free_port(binaries, directory, user)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise

    @classmethod
    def _start_on_a_free_port(
        cls, binaries: Path, directory: Path, user: pwd.struct_passwd | None
    ) -> PostgresServer:
        log = directory / "server.log"

        def launch(port: int) -> subprocess.Popen[bytes]:
            with log.open("ab") as output:
                # Dies with the test run even when it is SIGKILLed; its backends follow it.
                return start_child(
                    [
                        binaries / "postgres",
                        *("-D", directory / "data", "-p", str(port)),
                        *("-c", "listen_addresses=127.0.0.1"),
                        *("-c", "unix_socket_directories="),
                        # A throwaway server: durability buys the tests nothing.
                        *("-c", "fsync=off", "-c", "synchronous_commit=off"),
                        *("-c", "full_page_writes=off", "-c", "max_connections=300"),
                    ],
                    setpriv_options=_as_user(user),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=directory,
                )

        for _ in range(3):  # another process may take the free port first
            port = _free_port()
            server = cls(directory, launch(port), port, launch)
            if server._wait_until_ready():
                server._create_test_database()
                return server
            server._stop_process()
        pytest.fail(f"PostgreSQL did not start:\n{log.read_text(errors='replace')}", pytrace=False)

    def _wait_until_ready(self) -> bool:
        """Polls until the server answers (nothing to wait on: it has no readiness signal)."""
        deadline = time.monotonic() + _READY_SECONDS
        while self._process.poll() is None and time.monotonic() < deadline:
            try:
                psycopg.connect(self._server_url, connect_timeout=2).close()
            except psycopg.OperationalError:
                time.sleep(0.05)
                continue
            return True
        return False

    @property
    def _server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _create_test_database(self) -> None:
        with psycopg.connect(self._server_url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {_DATABASE}")

    def restart(self) -> None:
        """A fast shutdown (every session ended) and a start on the same port and data."""
        self._stop_process()
        self._process = self._launch(self.port)
        if not self._wait_until_ready():
            log = (self.directory / "server.log").read_text(errors="replace")[-2000:]
            pytest.fail(
                f"PostgreSQL did not come back after a restart (exit {self._process.poll()}):"
                f"\n{log}",
                pytrace=False,
            )

    def create_database(self) -> str:
        """A new, empty database (a schema of its own); its URL."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {name}")
        return f"{self.admin_url}?application_name={name}&options=-csearch_path%3D{name}"

    def stop(self) -> None:
        """Stops the server and removes its directory."""
        try:
            self._stop_process()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _stop_process(self) -> None:
        if self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)  # fast shutdown: ends every session
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _as_unprivileged(directory: Path) -> pwd.struct_passwd | None:
    """Under root: the unprivileged user the server runs as, now owning `directory`."""
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam(_UNPRIVILEGED_USER)
    os.chown(directory, user.pw_uid, user.pw_gid)
    directory.chmod(0o700)
    return user


def _as_user(user: pwd.struct_passwd | None) -> list[str]:
    """setpriv's options to run as `user` (none for None), given to the setpriv that ties the
    process to ours (deptmesh.registry.children): a change of user after it would clear
    the parent-death signal.

    Not Popen's user= and group=: those make Python fork() rather than vfork(),
    and a fork runs gRPC's fork handlers, which abort the child when gRPC
    threads are busy in the parent (a benchmark restarting the server under load).
    """
    if user is None:
        return []
    return [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


def _run(command: list[Path | str], directory: Path, user: pwd.struct_passwd | None) -> None:
    result = subprocess.run(
        tied_to_parent(command, _as_user(user)),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
