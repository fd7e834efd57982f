"""bench/overhead.py runs end to end and ends with its summary line (numbers not judged)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_overhead_benchmark_prints_its_summary():
    """A tiny run prints the ratio table and a last line a script can parse."""
    tiny = ["--rounds", "1", "--seconds", "0.2", "--latency-calls", "20"]
    finished = subprocess.run(
        [sys.executable, "-m", "bench.overhead", *tiny],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    lines = finished.stdout.strip().splitlines()
    assert lines[1].split() == [
        "configuration",
        *("calls/s", "ratio"),
        *("p50", "us", "added", "us"),
        *("server", "cpu", "us/call", "added"),
    ]
    assert [line.split()[0] for line in lines[2:-1]] == [
        *("bare", "aio_connect", "authz", "quota", "full", "sampled1", "otel_contrib", "floor")
    ]
    ratio = r"\d+\.\d{3}"
    assert re.fullmatch(
        rf"overhead full={ratio} sampled1={ratio} otel_contrib={ratio} p50_added_us=-?\d+",
        lines[-1],
    )
