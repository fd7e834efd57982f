"""bench/metering.py runs end to end and ends with its summary line (numbers not judged)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_metering_benchmark_prints_its_summary():
    """A tiny run measures ingest, a statement and the stage, and prints a parsable last line."""
    finished = subprocess.run(
        [
            sys.executable,
            *("-m", "bench.metering"),
            *("--records", "6000", "--rpc-records", "1000", "--calls", "2000"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    last = finished.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"metering ingest_records_per_s=\d+ statement_ms_1M_records=\d+ per_call_ns=\d+", last
    )
