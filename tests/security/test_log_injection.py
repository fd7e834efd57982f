"""Untrusted values never reach the logs with raw control characters.

A CR/LF in a logged value could forge a log line, an ESC drive the terminal of
whoever reads the log. The server runs in its own process and logs exactly as a
service does (`configure_logging`, JSON or console, to stderr; see
logging_server.py); the tests read that stream while making calls that carry CR,
LF, ESC, BEL, TAB, DEL and NUL everywhere a caller controls a value that reaches a
log today:

- a request field, logged by a handler and carried in the message of an
  unexpected exception, which the sidecar logs with its traceback;
- binary metadata (`-bin`), decoded and logged by a handler: the grpc client
  refuses control characters in ASCII metadata before anything is sent;
- the URI SAN of a client certificate that our CA signed, logged as the caller.

Each test finds the log line that carries the value, in its escaped form, and
checks that nothing in the whole stream has a raw control character inside a
line. Calls that are refused before the handler (a SAN naming no service of
ours) are not logged at all today: those tests check the status, that the
handler never ran, and that nothing of them reached the log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid

import grpc
import pytest

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.sidecar.identity.dev_ca import IssuedCertificate
from deptmesh.sidecar.identity.spiffe import server_name
from tests.integration.servers import wait_for
from tests.security.mtls import CA

# What an attacker appends: a forged log line, terminal escapes (clear screen,
# set the window title), a bell, a tab and DEL. (No spaces: the console renderer
# writes a value with spaces as its repr, which would double the backslashes.)
HOSTILE = "\r\nFORGED:level:critical\x1b[2J\x1b]0;owned\x07\t\x7f"
# The same as it must appear in a log line: every control character visible.
ESCAPED = r"\x0d\x0aFORGED:level:critical\x1b[2J\x1b]0;owned\x07\x09\x7f"

SPIFFE_PREFIX = f"spiffe://{CA.trust_domain}/ns/"


class LoggingServer:
    """The child process, and the lines of its standard error as they arrive."""

    def __init__(self, directory, flavour: str, log_format: str) -> None:
        self.log_format = log_format
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.security.logging_server", str(directory)),
                *("--flavour", flavour, "--log-format", log_format),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # bytes: text mode would turn a raw CR into a newline
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.process.stdout.readline().decode()
        assert first.startswith("serving on "), f"server did not start: {first!r} {self.lines}"
        self.address = first.removeprefix("serving on ").strip()

    def _read(self) -> None:
        for raw in iter(self.process.stderr.readline, b""):
            self.lines.append(raw.decode("utf-8", errors="replace").removesuffix("\n"))

    def lines_with(self, *fragments: str) -> list[str]:
        """Waits for, then returns, the lines that hold every fragment."""

        def found() -> list[str]:
            return [line for line in list(self.lines) if all(f in line for f in fragments)]

        return wait_for(found, timeout=10, what=f"a log line with {fragments}")

    def rendered(self, text: str) -> str:
        """`text` (already escaped) as the renderer writes it inside a line."""
        return text if self.log_format == "console" else json.dumps(text)[1:-1]

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(timeout=10)
            self.process.stdout.close()
            self.process.stderr.close()


def raw_controls(line: str) -> list[str]:
    return [ch for ch in line if not ch.isprintable()]


def assert_clean(server: LoggingServer) -> None:
    """No raw control character inside any line, and no line that the attacker began."""
    for line in list(server.lines):
        assert not raw_controls(line), f"raw control characters in a log line: {line!r}"
        assert not line.lstrip().startswith("FORGED"), f"forged log line: {line!r}"


@pytest.fixture(
    scope="module",
    params=[("sync", "json"), ("sync", "console"), ("aio", "json"), ("aio", "console")],
    ids=lambda param: "-".join(param),
)
def server(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("identity")
    leaf = CA.issue("hr")
    (directory / "cert.pem").write_bytes(leaf.certificate_pem)
    (directory / "key.pem").write_bytes(leaf.private_key_pem)
    (directory / "bundle.pem").write_bytes(CA.ca_pem)
    (directory / "trust-domain").write_text(CA.trust_domain)
    running = LoggingServer(directory, *request.param)
    yield running
    running.stop()


def get_employee(server: LoggingServer, employee_id: str, *, leaf=None, metadata=()):
    """Calls GetEmployee as `leaf` (reimbursement's by default); the status code."""
    leaf: IssuedCertificate = leaf or CA.issue("reimbursement")
    credentials = grpc.ssl_channel_credentials(
        CA.ca_pem, leaf.private_key_pem, leaf.certificate_pem
    )
    options = [("grpc.ssl_target_name_override", server_name("hr", CA.trust_domain))]
    with grpc.secure_channel(server.address, credentials, options=options) as channel:
        stub = hr_pb2_grpc.EmployeeServiceStub(channel)
        try:
            stub.GetEmployee(
                hr_pb2.GetEmployeeRequest(employee_id=employee_id), metadata=metadata, timeout=5
            )
        except grpc.RpcError as error:
            return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def handler_never_ran(server: LoggingServer, marker: str) -> None:
    """A later call's line is in the log, and nothing before it mentions `marker`."""
    later = f"later-{uuid.uuid4().hex[:8]}"
    assert get_employee(server, later)[0] is grpc.StatusCode.OK
    server.lines_with("employee_lookup", later)
    assert not [line for line in list(server.lines) if marker in line]


def marker() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


class TestRequestFields:
    def test_request_field_is_escaped_in_handler_and_failure_logs(self, server):
        """An id with CR/LF/ESC/NUL is logged escaped by the handler, and escaped in the
        traceback the sidecar logs when it fails; the caller sees only INTERNAL."""
        employee_id = f"missing-{marker()}{HOSTILE}\x00"
        escaped_id = employee_id.replace(HOSTILE + "\x00", ESCAPED + r"\x00")

        assert get_employee(server, employee_id) == (grpc.StatusCode.INTERNAL, "internal error")

        lookup = server.lines_with("employee_lookup", server.rendered(escaped_id))
        assert len(lookup) == 1
        failure = server.lines_with(server.rendered(f"LookupError: no employee {escaped_id}"))
        assert len(failure) == 1
        if server.log_format == "json":
            assert json.loads(failure[0])["event"] == "handler_failed"
        assert_clean(server)


class TestMetadata:
    def test_binary_metadata_is_escaped_when_logged(self, server):
        """A `-bin` value with control characters reaches the handler and is logged escaped."""
        note = marker()
        code, _ = get_employee(
            server, f"note-{note}", metadata=[("note-bin", f"{note}{HOSTILE}".encode())]
        )
        assert code is grpc.StatusCode.OK
        (line,) = server.lines_with("employee_lookup", f"note-{note}")
        assert server.rendered(f"{note}{ESCAPED}") in line
        assert_clean(server)

    @pytest.mark.parametrize("value", ["a\r\nFORGED", "a\x1b[2J", "a\tb", "a\x00b"])
    def test_ascii_metadata_with_control_characters_is_never_sent(self, server, value):
        """grpc refuses to send ASCII metadata with control characters: nothing reaches
        the server, which is why the other tests use `-bin` metadata."""
        employee_id = marker()
        code, _ = get_employee(server, employee_id, metadata=[("note", value)])
        assert code is grpc.StatusCode.INTERNAL
        handler_never_ran(server, employee_id)
        assert_clean(server)


class TestCertificateSan:
    @pytest.mark.parametrize(
        ("uri", "logged"),
        [
            (f"{SPIFFE_PREFIX}default{HOSTILE}/dc/dc1/svc/reimbursement", None),
            (f"{SPIFFE_PREFIX}default/dc/dc1/svc/reimbursement{HOSTILE}", None),
            (f"{SPIFFE_PREFIX}default/dc/dc1/svc/{HOSTILE}", None),
            # grpc hands over the SAN as a C string: it ends at the NUL.
            (f"{SPIFFE_PREFIX}de\x00fault/dc/dc1/svc/reimbursement", f"{SPIFFE_PREFIX}de"),
        ],
        ids=["in-namespace", "after-service", "as-service", "nul-in-namespace"],
    )
    def test_hostile_san_is_refused_and_logged_escaped(self, server, uri, logged):
        """A SAN with control characters anywhere is UNAUTHENTICATED before the handler runs;
        the refusal is logged with the SAN escaped, and no log line is forged."""
        employee_id = marker()
        leaf = CA.issue("reimbursement", uris=[uri])
        assert get_employee(server, employee_id, leaf=leaf)[0] is grpc.StatusCode.UNAUTHENTICATED
        handler_never_ran(server, employee_id)
        escaped = logged or uri.replace(HOSTILE, ESCAPED)
        assert server.lines_with("caller_refused", server.rendered(escaped))
        assert_clean(server)
