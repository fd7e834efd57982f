"""With --log-format console the access log reads as the console's other lines do."""

from __future__ import annotations

import io
import re

import grpc

from deptmesh.sidecar.caller import Caller
from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.stage import MeteringStage
from tests.unit.test_usage_access_log import GET_EMPLOYEE, REIMBURSEMENT, _run_call

# As structlog's ConsoleRenderer(colors=False) lays out a line.
CONSOLE_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \[info     \] call {26}"
    r" caller=(?P<caller>\S+) duration_ms=[0-9.]+ method=(?P<method>\S+)"
    r" request_bytes=\d+ response_bytes=\d+ status=(?P<status>[A-Z_]+)"
)


class TestConsoleAccessLog:
    def test_a_call_is_one_console_line(self):
        """The call's fields as key=value after the timestamp, level and event."""
        log = io.StringIO()
        usage = MeteringStage("hr", access_log=AccessLog(log, "console"))
        _run_call(usage, REIMBURSEMENT, grpc.StatusCode.NOT_FOUND)
        usage.drain()
        [line] = log.getvalue().splitlines()
        match = CONSOLE_LINE.fullmatch(line)
        assert match, line
        assert match["caller"] == "reimbursement"
        assert match["method"] == GET_EMPLOYEE.path
        assert match["status"] == "NOT_FOUND"

    def test_text_from_outside_is_quoted_and_escaped(self):
        """A caller name with spaces, quotes, newlines or escapes stays on its one line,
        quoted, its control characters written as escapes."""
        log = io.StringIO()
        usage = MeteringStage("hr", access_log=AccessLog(log, "console"))
        hostile = Caller('evil status=OK\n"forged"\x1b[2J', "spiffe://td/x", "x")
        _run_call(usage, hostile, grpc.StatusCode.PERMISSION_DENIED)
        usage.drain()
        text = log.getvalue()
        assert text.count("\n") == 1
        assert "\x1b" not in text
        assert "caller='evil status=OK\\n\"forged\"\\x1b[2J'" in text
