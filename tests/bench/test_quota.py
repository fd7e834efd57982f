"""bench/quota.py runs end to end and ends with its summary line (numbers not judged)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_quota_benchmark_prints_its_summary():
    """A tiny run measures all three and prints a last line a script can parse."""
    finished = subprocess.run(
        [sys.executable, "-m", "bench.quota", "--seconds", "0.3", "--calls", "2000"],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    last = finished.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"quota ns_per_check=\d+ admitted_ratio=\d+\.\d{3} mib_100k_callers=\d+\.\d", last
    )
