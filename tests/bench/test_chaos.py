"""bench/chaos.py, tiny: every fault injected once under load, nothing lost or paid twice."""

from __future__ import annotations

import re
import subprocess
import sys


def test_chaos_benchmark_loses_nothing_and_pays_once():
    """A short run on the real cluster, PostgreSQL and departments: each fault once, every
    payout acknowledged and in the database once, every claim PAID once."""
    tiny = [
        # 30 s of payouts: about twice what the five faults take here.
        *("--payouts", "120", "--rate", "4", "--rounds", "1", "--pause-seconds", "1"),
        *("--claims", "12", "--claim-rate", "3", "--workers", "4"),
    ]
    finished = subprocess.run(
        [sys.executable, "-m", "bench.chaos", *tiny],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr[-3000:]
    lines = finished.stdout.splitlines()
    assert re.fullmatch(
        r"chaos payouts=120 acknowledged=120 lost=0 duplicated=0 failed_calls=\d+"
        r" elapsed_s=\d+\.\d",
        lines[0],
    )
    assert lines[3] == (
        "faults injected: 5 (drain_replica, kill_replica, pause_consul_leader,"
        " restart_postgresql, rotate_connect_ca)"
    )
    recovered = sorted(line.split(":")[0] for line in lines if line.startswith("recovery "))
    assert recovered == [
        *("recovery drain_replica", "recovery kill_replica", "recovery pause_consul_leader"),
        *("recovery restart_postgresql", "recovery rotate_connect_ca"),
    ]
    [claims] = [line for line in lines if line.startswith("claims submitted")]
    assert re.match(
        r"claims submitted=12 paid=12 not_paid_once=0 finance_replicas_killed=[1-9]", claims
    )
