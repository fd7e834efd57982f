"""`make demo` as a user runs it: its counts are what it says, the `deptmesh trace` commands
it prints work after it has ended, and it leaves no process behind."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

DEPTMESH = Path(sys.executable).with_name("deptmesh")
# "8. The claim as on-call sees it: deptmesh trace --claim clm_... --store ..."
PRINTED_TRACE = re.compile(r"^\d+\. .*?: (?P<command>deptmesh trace .*)$", re.MULTILINE)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """One run of the demo with a state directory of its own; its output and environment."""
    environ = {**os.environ, "XDG_STATE_HOME": str(tmp_path_factory.mktemp("state"))}
    finished = subprocess.run(
        [sys.executable, "-m", "deptmesh.services.demo"],
        capture_output=True,
        text=True,
        check=False,
        env=environ,
        timeout=110,
    )
    assert finished.returncode == 0, f"{finished.stdout}\n{finished.stderr}"
    return finished, environ


def _demo_directory(environ: dict[str, str]) -> Path:
    return Path(environ["XDG_STATE_HOME"]) / "deptmesh" / "demo"


class TestDemo:
    def test_the_budget_reads_are_counted_as_many_as_it_says(self, demo_run):
        """Step 6's per-replica counts add up to the number of reads it announces, over both
        finance replicas."""
        output = demo_run[0].stdout
        [announced] = re.findall(r"^6\. (\d+) budget reads", output, re.MULTILINE)
        counts = [int(n) for n in re.findall(r"^   finance at \S+: (\d+) calls$", output, re.M)]
        assert len(counts) == 2
        assert sum(counts) == int(announced) == 20

    def test_the_printed_trace_commands_work_after_the_demo(self, demo_run):
        """Each `deptmesh trace ...` the demo printed, run afterwards as printed, shows its
        trace from the store the demo left in its directory."""
        finished, environ = demo_run
        commands = PRINTED_TRACE.findall(finished.stdout)
        assert len(commands) == 2
        for command in commands:
            argv = shlex.split(command)
            shown = subprocess.run(
                [str(DEPTMESH), *argv[1:]],
                capture_output=True,
                text=True,
                check=False,
                env=environ,
                timeout=30,
            )
            assert shown.returncode == 0, f"{command}\n{shown.stderr}"
            assert shown.stdout.startswith("trace ")
        assert str(_demo_directory(environ) / "traces.sqlite") in commands[0]

    def test_it_says_where_its_files_are_and_how_to_delete_them(self, demo_run):
        """The demo names its directory, which holds the logs and the trace store and no
        token, and the command that deletes it."""
        finished, environ = demo_run
        directory = _demo_directory(environ)
        assert f"To delete them: rm -r {directory}" in finished.stdout
        names = {path.name for path in directory.iterdir()}
        assert {"traces.sqlite", "hr-1.log", "finance-2.log", "reimbursement-1.log"} <= names
        assert not [name for name in names if name.endswith(".token")]

    def test_no_process_is_left_behind(self, demo_run):
        """No process still runs with the demo's directory on its command line (every
        department was given its database there)."""
        directory = str(_demo_directory(demo_run[1])).encode()
        left = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if directory in (proc / "cmdline").read_bytes():
                        left.append(proc.name)
                except OSError:
                    continue
        assert left == []
