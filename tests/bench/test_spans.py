"""bench/spans.py runs end to end and ends with its summary line (numbers not judged)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_spans_benchmark_prints_its_summary():
    finished = subprocess.run(
        [sys.executable, "-m", "bench.spans", "--spans", "2000"],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    last = finished.stdout.strip().splitlines()[-1]
    number = r"\d+\.\d{2}"
    assert re.fullmatch(rf"spans sdk_us={number} recorded_us={number} store_us={number}", last)
