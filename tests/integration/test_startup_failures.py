"""A department that cannot start says why in one line naming the flag and what to do,
exits non-zero, and prints no traceback (the host's start-up failures, issue 14)."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator

import pytest

from deptmesh.sidecar.cli import main
from tests.integration.servers import run_service_until_exit


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (this one) listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The only line a failed start printed, on standard error."""
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def not_started(result: subprocess.CompletedProcess[str], event: str = "not_started") -> str:
    """The message of the one JSON line `event` of a department that exited 1."""
    assert result.returncode == 1, result.stderr
    line = json.loads(one_line(result))
    assert line["event"] == event
    assert line["level"] == "error"
    assert line["service"] == "hr"
    message: str = line["error"]
    return message


class TestPorts:
    def test_port_in_use(self, tmp_path, taken_port):
        """--port taken by another process: the port, and to choose another or 0."""
        result = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--port", str(taken_port)
        )
        assert not_started(result) == (
            f"--port {taken_port} is in use by another process; choose another port or --port 0"
        )

    def test_metrics_port_in_use(self, tmp_path, taken_port):
        """--metrics-port taken: named as such, nothing left serving."""
        result = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--metrics-port", str(taken_port)
        )
        assert not_started(result) == (
            f"--metrics-port {taken_port} is in use by another process;"
            " choose another port or --metrics-port 0"
        )

    def test_host_that_is_not_this_machines(self, tmp_path):
        """--host naming an address this machine does not have says so."""
        result = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--host", "192.0.2.1"
        )
        assert not_started(result).startswith("--host 192.0.2.1 is not an address of this machine")

    def test_console_log_format_is_plain_text(self, tmp_path, taken_port):
        """With --log-format console the line is plain `hr: <message>`."""
        result = run_service_until_exit(
            "hr",
            "--db",
            str(tmp_path / "hr.db"),
            "--port",
            str(taken_port),
            "--log-format",
            "console",
        )
        assert result.returncode == 1
        assert one_line(result) == (
            f"hr: --port {taken_port} is in use by another process; choose another port or --port 0"
        )

    def test_log_file_gets_the_line_and_standard_error_too(self, tmp_path, taken_port):
        """With --log-file the JSON line goes to the file and a plain one to standard error,
        so whoever started the process sees it."""
        log = tmp_path / "hr.log"
        result = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--port", str(taken_port), "--log-file", str(log)
        )
        assert result.returncode == 1
        assert one_line(result).startswith(f"hr: --port {taken_port} is in use")
        [logged] = log.read_text().splitlines()
        assert json.loads(logged)["event"] == "not_started"


class TestDatabase:
    def test_folder_that_cannot_be_made(self, tmp_path):
        """--db in a "folder" that is a file: it cannot be made, and where to put it."""
        (tmp_path / "a-file").write_text("")
        db = tmp_path / "a-file" / "hr.db"
        result = run_service_until_exit("hr", "--db", str(db))
        assert not_started(result) == (
            f"--db {db}: its folder {db.parent} cannot be made (is a file);"
            " give a path in a folder this user can write"
        )

    def test_file_that_is_not_a_database(self, tmp_path):
        """--db naming a file that is not SQLite says so, and leaves the file alone."""
        db = tmp_path / "notes.txt"
        db.write_text("not a database, but someone's notes\n" * 100)
        result = run_service_until_exit("hr", "--db", str(db))
        assert not_started(result) == (
            f"--db {db} is not a SQLite database; give the department's own database file,"
            " or a new path for an empty one"
        )
        assert db.read_text().startswith("not a database")

    def test_folder_given_as_the_database(self, tmp_path):
        """--db naming a folder: SQLite's reason, and to give a file."""
        result = run_service_until_exit("hr", "--db", str(tmp_path))
        assert not_started(result) == (
            f"--db {tmp_path} cannot be used as a SQLite database (unable to open database"
            " file); give a file (not a folder) in a folder this user can write"
        )

    def test_postgresql_server_that_does_not_answer(self):
        """--db postgresql://... with nothing listening: libpq's reason, once (the pool's
        own retry warnings are not printed)."""
        port = free_port()
        url = f"postgresql://nobody@127.0.0.1:{port}/hr"
        result = run_service_until_exit("hr", "--db", url)
        message = not_started(result)
        assert message.startswith(f"--db {url}: the PostgreSQL server could not be reached (")
        assert "Connection refused" in message
        assert message.endswith("); start it, or fix the URL")


class TestConsul:
    @pytest.mark.parametrize(
        ("address", "why"),
        [
            ("garbage", "'garbage' is not HOST:PORT (for example 127.0.0.1:8500)"),
            ("127.0.0.1:99999", "'127.0.0.1:99999': the port must be a number from 1 to 65535"),
        ],
    )
    def test_consul_address_that_is_not_host_port(self, tmp_path, address, why):
        """--consul-address is checked when the flags are parsed: exit 2, one line."""
        result = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--consul-address", address
        )
        assert result.returncode == 2
        line = one_line(result)
        assert line.startswith(f"python -m deptmesh.services.hr: argument --consul-address: {why}")
        assert line.endswith("(--help lists the flags)")

    def test_cli_consul_address_that_is_not_host_port(self, capsys):
        """`deptmesh quota --consul-address garbage` is refused the same way."""
        with pytest.raises(SystemExit) as exited:
            main(["quota", "--consul-address", "x"])
        assert exited.value.code == 2
        assert capsys.readouterr().err == (
            "deptmesh quota: argument --consul-address: 'x' is not HOST:PORT"
            " (for example 127.0.0.1:8500) (--help lists the flags)\n"
        )

    def test_consul_that_does_not_answer(self, tmp_path):
        """No agent at --consul-address: the address, the reason in a few words, what to do;
        not the HTTP client's exception text."""
        address = f"127.0.0.1:{free_port()}"
        result = run_service_until_exit(
            "hr", "--db", str(tmp_path / "hr.db"), "--consul-address", address
        )
        assert not_started(result, "consul_unreachable") == (
            f"--consul-address {address}: Consul could not be asked (connection refused:"
            " no agent listens there); start the agent (deptmesh dev up starts a local one)"
            " or fix --consul-address"
        )
