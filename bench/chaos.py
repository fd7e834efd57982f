"""Payouts happen once, whatever fails: a fault run on the mesh as production runs it.

The mesh: a Consul cluster (three servers, two hosts' client agents, ACLs on),
PostgreSQL, and on each host a finance replica over one PostgreSQL database;
host-a also runs hr, host-b reimbursement, each through its own host's agent
with its own token.

Phase 1 drives `--payouts` payouts as the reimbursement identity (from host-b),
each a ReserveFunds and a Payout under a key of its own, retried until
acknowledged, paced at `--rate` payouts a second by `--workers` threads. Meanwhile
one thread injects, `--rounds` times each, the faults of bench/chaos_faults.py:
a replica SIGKILLed and restarted, a replica drained and restarted, the Consul
leader frozen for `--pause-seconds`, a Connect CA rotation, a PostgreSQL
restart. Then finance's database is read back: every acknowledged payout must be
there once, with one ledger entry, and the budget's spent amount must be their sum.

Phase 2 files `--claims` claims with reimbursement and approves them while the
finance replicas are killed and restarted, both at once at times; every claim must
end PAID with exactly one payout.

    python -m bench.chaos [--payouts N] [--claims N] [--rounds N] [--pause-seconds S]

The line for scripts:
`chaos payouts=N acknowledged=A lost=L duplicated=D failed_calls=F elapsed_s=S`,
then one `recovery` line per fault (fault -> the next successful call) and a
`claims` line. The exit status is 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
import psycopg

from bench.chaos_faults import FAULTS, Faults, Recovery
from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.cluster import ConsulCluster
from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from deptmesh.sidecar.logs import configure_logging
from tests.integration.consul.cluster_mesh import Caller, ClusterMesh
from tests.postgres import PostgresServer

Response = TypeVar("Response")

PLACEMENT = {"host-a": ["hr", "finance"], "host-b": ["reimbursement", "finance"]}
CLAIMANT = "chaos-claimant"  # files and approves claims (phase 2)
PAYOUT_COST_CENTER = "CC-EXEC"
PAYOUT = money_pb2.Money(currency_code="EUR", units=1)
CLAIM = money_pb2.Money(currency_code="EUR", units=10)
EMPLOYEE, MANAGER = "E1002", "E1001"
CALL_SECONDS = 5.0
GIVE_UP_SECONDS = 300.0  # one payout retried this long is reported, not retried forever


STOPPING = threading.Event()  # set on Ctrl-C (or a failure): every load thread gives up


class Stopped(Exception):
    """The run is being stopped."""


def paced(
    count: int, rate: float, workers: int, action: Callable[[int], Response]
) -> list[Response]:
    """action(0 .. count-1) from `workers` threads, the i-th started no sooner than i/rate
    seconds from now, so that the load spans the faults injected meanwhile."""
    started = time.monotonic()

    def run(index: int) -> Response:
        if STOPPING.wait(max(0.0, started + index / rate - time.monotonic())):  # pacing
            raise Stopped
        return action(index)

    with ThreadPoolExecutor(workers, thread_name_prefix="load") as pool:
        submitted = [pool.submit(run, index) for index in range(count)]
        try:
            return [future.result() for future in submitted]
        except BaseException:
            STOPPING.set()
            pool.shutdown(cancel_futures=True)
            raise


class Attempts:
    """Calls retried until they succeed; every failed attempt counted by its code."""

    def __init__(self, recovery: Recovery) -> None:
        self._recovery = recovery
        self._lock = threading.Lock()
        self.failed: Counter[str] = Counter()

    def until_ok(self, call: Callable[[], Response]) -> Response:
        give_up_at = time.monotonic() + GIVE_UP_SECONDS
        pause = 0.05
        while True:
            if STOPPING.is_set():
                raise Stopped
            started = time.monotonic()
            try:
                response = call()
            except grpc.RpcError as error:
                with self._lock:
                    self.failed[error.code().name] += 1
                if time.monotonic() > give_up_at:
                    raise
                STOPPING.wait(random.uniform(0, pause))  # backoff before the retry
                pause = min(pause * 2, 1.0)
                continue
            self._recovery.succeeded(started, time.monotonic())
            return response


class Payouts:
    """Phase 1: `count` payouts, each under its own key, paced at `rate` a second."""

    def __init__(self, caller: Caller, attempts: Attempts, count: int, rate: float) -> None:
        channel = caller.connect("finance")
        self._budgets = finance_pb2_grpc.BudgetServiceStub(channel)
        self._payments = finance_pb2_grpc.PaymentServiceStub(channel)
        self._attempts = attempts
        self._count = count
        self._rate = rate
        self.prefix = f"chaos-{uuid.uuid4().hex[:8]}-"
        self.acknowledged: dict[str, str] = {}  # idempotency key -> payout id
        self.given_up: list[str] = []  # keys retried for GIVE_UP_SECONDS

    def run(self, workers: int) -> None:
        paced(self._count, self._rate, workers, self._pay)

    def _pay(self, index: int) -> None:
        key = f"{self.prefix}{index:06d}"
        try:
            reserved = self._attempts.until_ok(
                lambda: self._budgets.ReserveFunds(
                    finance_pb2.ReserveFundsRequest(
                        idempotency_key=key, cost_center_id=PAYOUT_COST_CENTER, amount=PAYOUT
                    ),
                    timeout=CALL_SECONDS,
                )
            )
            paid = self._attempts.until_ok(
                lambda: self._payments.Payout(
                    finance_pb2.PayoutRequest(
                        idempotency_key=key,
                        reservation_id=reserved.reservation.reservation_id,
                        payee_employee_id=EMPLOYEE,
                        amount=PAYOUT,
                        memo="chaos",
                    ),
                    timeout=CALL_SECONDS,
                )
            )
        except grpc.RpcError:
            self.given_up.append(key)
            return
        self.acknowledged[key] = paid.payout.payout_id


class Ledger:
    """Finance's database, read back: what was paid, and how many times."""

    def __init__(self, url: str) -> None:
        self._url = url

    def payouts_per_key(self, prefix: str) -> Counter[str]:
        rows = self._query(
            "SELECT idempotency_key, count(*) FROM payouts"
            " WHERE caller = 'reimbursement' AND idempotency_key LIKE %s GROUP BY 1",
            (prefix + "%",),
        )
        return Counter({key: count for key, count in rows})

    def extra_ledger_entries(self) -> int:
        """Ledger entries beyond one per payout, plus payouts with none."""
        [(extra,)] = self._query(
            "SELECT coalesce(sum(abs(entries - 1)), 0) FROM"
            " (SELECT count(l.entry_id) AS entries FROM payouts p"
            "  LEFT JOIN ledger_entries l ON l.payout_id = p.payout_id GROUP BY p.payout_id) n"
        )
        return int(extra)

    def spent_matches_payouts(self, cost_center_id: str) -> bool:
        [(spent, paid)] = self._query(
            "SELECT b.spent_nanos, (SELECT coalesce(sum(amount_nanos), 0) FROM payouts p"
            " WHERE p.cost_center_id = b.cost_center_id)"
            " FROM budgets b WHERE b.cost_center_id = %s",
            (cost_center_id,),
        )
        return bool(spent == paid)

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self._url) as connection:
            return list(connection.execute(sql, parameters).fetchall())


class Background(Generic[Response]):
    """`work(done)` in a thread while the `with` body runs, `done` set when it ends. A
    failure there stops the whole run, and is what the `with` raises."""

    def __init__(self, name: str, work: Callable[[threading.Event], Response]) -> None:
        self.done = threading.Event()
        self.result: Response | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), name=name)

    def _run(self, work: Callable[[threading.Event], Response]) -> None:
        try:
            self.result = work(self.done)
        except BaseException as error:  # noqa: BLE001 -- re-raised by __exit__
            self._error = error
            STOPPING.set()

    def __enter__(self) -> Background[Response]:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self._thread.join()
        if self._error is not None:
            raise self._error


def run_faults(faults: Faults, rounds: int, gap: float, done: threading.Event) -> list[str]:
    """Each fault `rounds` times, one after another `gap` seconds apart, until `done`;
    the names of those injected."""
    injected = []
    for fault in [fault for _ in range(rounds) for fault in FAULTS]:
        if done.wait(gap) or STOPPING.is_set():
            break
        fault(faults)
        injected.append(fault.__name__)
    return injected


def payouts_phase(mesh: ClusterMesh, postgres: PostgresServer, options: argparse.Namespace) -> int:
    recovery = Recovery()
    attempts = Attempts(recovery)
    caller = mesh.caller("reimbursement", mesh.host("host-b"))
    payouts = Payouts(caller, attempts, options.payouts, options.rate)
    rotate_token = mesh.cluster.admin().platform_token(rotate_connect_ca=True).secret_id
    faults = Faults(
        mesh,
        postgres,
        recovery,
        pause_seconds=options.pause_seconds,
        rotate_token=rotate_token,
    )
    started = time.monotonic()
    with Background(
        "faults", lambda done: run_faults(faults, options.rounds, 2.0, done)
    ) as injector:
        payouts.run(options.workers)
    injected = injector.result or []
    elapsed = time.monotonic() - started

    ledger = Ledger(mesh.database("finance"))
    paid = ledger.payouts_per_key(payouts.prefix)
    lost = sum(1 for key in payouts.acknowledged if key not in paid)
    duplicated = sum(count - 1 for count in paid.values()) + ledger.extra_ledger_entries()
    consistent = ledger.spent_matches_payouts(PAYOUT_COST_CENTER)
    print(
        f"chaos payouts={options.payouts} acknowledged={len(payouts.acknowledged)}"
        f" lost={lost} duplicated={duplicated} failed_calls={sum(attempts.failed.values())}"
        f" elapsed_s={elapsed:.1f}"
    )
    print(f"failed calls by code: {dict(attempts.failed) or '{}'}")
    print(
        f"paid but not acknowledged: {len(set(paid) - set(payouts.acknowledged))};"
        f" given up: {len(payouts.given_up)}; budget spent = sum of payouts: {consistent}"
    )
    print(f"faults injected: {len(injected)} ({', '.join(sorted(set(injected)))})")
    for name, seconds in sorted(recovery.seconds.items()):
        times = ", ".join(f"{s * 1000:.0f}" for s in seconds)
        print(
            f"recovery {name}: n={len(seconds)} max_ms={max(seconds) * 1000:.0f}"
            f" median_ms={statistics.median(seconds) * 1000:.0f} ({times})"
        )
    for name in recovery.unrecovered():
        print(f"recovery {name}: no successful call after it")
    expected = options.rounds * len(FAULTS)
    healthy = lost == 0 and duplicated == 0 and consistent and not payouts.given_up
    return 0 if healthy and len(injected) == expected else 1


class Claims:
    """Phase 2: claims filed and approved through reimbursement, then waited on until PAID."""

    def __init__(self, caller: Caller, attempts: Attempts) -> None:
        self._claims = reimbursement_pb2_grpc.ReimbursementServiceStub(
            caller.connect("reimbursement")
        )
        self._attempts = attempts

    def file_and_approve(self, index: int) -> str:
        submitted = self._attempts.until_ok(
            lambda: self._claims.SubmitClaim(
                reimbursement_pb2.SubmitClaimRequest(
                    employee_id=EMPLOYEE,
                    amount=CLAIM,
                    description=f"chaos claim {index}",
                    request_id=f"chaos-claim-{index}-{uuid.uuid4().hex}",
                ),
                timeout=CALL_SECONDS,
            )
        )
        claim_id: str = submitted.claim.claim_id
        self._attempts.until_ok(lambda: self._approve(claim_id))
        return claim_id

    def _approve(self, claim_id: str) -> None:
        request = reimbursement_pb2.ApproveClaimRequest(claim_id=claim_id, approver_id=MANAGER)
        try:
            self._claims.ApproveClaim(request, timeout=CALL_SECONDS)
        except grpc.RpcError:
            # Unless an earlier attempt approved it and its answer was lost on the way.
            if self.state(claim_id) == reimbursement_pb2.CLAIM_STATE_SUBMITTED:
                raise

    def state(self, claim_id: str) -> int:
        request = reimbursement_pb2.GetClaimRequest(claim_id=claim_id)
        response = self._attempts.until_ok(
            lambda: self._claims.GetClaim(request, timeout=CALL_SECONDS)
        )
        state: int = response.claim.state
        return state


def kill_finance_until(mesh: ClusterMesh, done: threading.Event) -> int:
    """Kills finance replicas (one, the other, then both at once) and starts them again,
    until `done`; how many were killed."""
    killed = 0
    for round_ in itertools.count():
        if done.wait(1.0):
            break
        hosts = mesh.cluster.hosts if round_ % 3 == 2 else [mesh.cluster.hosts[round_ % 2]]
        replicas = [
            (host, process)
            for host in hosts
            for process in mesh.on(host)
            if process.module.endswith(".finance")
        ]
        for _, process in replicas:
            process.kill()
            mesh.stop_department(process)
        killed += len(replicas)
        done.wait(1.0)  # down for a second, or less if the phase ends: finance ends whole
        for host, _ in replicas:
            mesh.start_department(host, "finance")
    return killed


def claims_phase(mesh: ClusterMesh, options: argparse.Namespace) -> int:
    attempts = Attempts(Recovery())
    claims = Claims(mesh.caller(CLAIMANT, mesh.host("host-a")), attempts)
    started = time.monotonic()
    with Background("killer", lambda done: kill_finance_until(mesh, done)) as killer:
        claim_ids = paced(
            options.claims, options.claim_rate, options.workers, claims.file_and_approve
        )
    mesh.wait_until_passing()
    deadline = time.monotonic() + GIVE_UP_SECONDS
    unpaid = set(claim_ids)
    while unpaid and time.monotonic() < deadline:  # reimbursement retries payouts itself
        unpaid = {c for c in unpaid if claims.state(c) != reimbursement_pb2.CLAIM_STATE_PAID}
        if unpaid and STOPPING.wait(0.5):
            raise Stopped
    elapsed = time.monotonic() - started
    payouts = Ledger(mesh.database("finance")).payouts_per_key("")
    not_once = sum(1 for claim_id in claim_ids if payouts[claim_id] != 1)
    print(
        f"claims submitted={len(claim_ids)} paid={len(claim_ids) - len(unpaid)}"
        f" not_paid_once={not_once} finance_replicas_killed={killer.result}"
        f" failed_calls={sum(attempts.failed.values())} elapsed_s={elapsed:.1f}"
    )
    print(f"claims failed calls by code: {dict(attempts.failed) or '{}'}")
    return 0 if not unpaid and not_once == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description="payouts happen once, whatever fails"
    )
    parser.add_argument("--payouts", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100.0, help="payouts started a second")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="how many times each fault")
    parser.add_argument("--pause-seconds", type=float, default=20.0, help="Consul leader frozen")
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--claim-rate", type=float, default=10.0, help="claims filed a second")
    options = parser.parse_args(argv)
    configure_logging(level=logging.WARNING)

    postgres = PostgresServer.start()
    try:
        finance_database = postgres.create_database()
        with (
            tempfile.TemporaryDirectory(prefix="deptmesh-chaos-") as workdir,
            ConsulCluster(servers=3, hosts=2) as cluster,
            ClusterMesh(
                cluster,
                Path(workdir),
                PLACEMENT,
                callers=[CLAIMANT],
                allow=[(CLAIMANT, "reimbursement")],
                databases={"finance": finance_database},
            ) as mesh,
        ):
            status = payouts_phase(mesh, postgres, options)
            status |= claims_phase(mesh, options)
    finally:
        postgres.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
