"""`make demo`: three departments, one expense claim, from submission to payout.

Starts a Consul dev agent with ACLs on (default deny: a request without a token
gets nothing) and makes the tokens the mesh runs with: one per department (a
service identity: its own registration and Connect leaf, the policy documents,
its own usage reports), and the platform's, which writes the intentions and
policy documents. Then HR, two finance replicas (sharing one database) and
reimbursement as separate processes on free ports, each given its token in a
file (`--consul-token-file`) and registered in Consul with a gRPC health check.
Drives one claim end to end through the generated stubs (reimbursement finds HR
and finance by name), shows calls spread across the finance replicas, prints
what happened, and stops every process it started. The usage ledger (the
`metering` department) runs first and stops last: once the departments have
stopped (shipping their last usage as they drain), the demo ends with
reimbursement's statement for the month, as `deptmesh bill` prints it when
asked as the platform.

While it runs, the developer portal (`deptmesh portal`) serves the mesh on a
free port of 127.0.0.1, and stops with it. The API reference is built into the
demo's directory: the file it prints opens in a browser with no server.

The trace store, the service logs and databases stay in `demo_directory()`
($XDG_STATE_HOME/deptmesh/demo), so that the `deptmesh trace` commands it prints
work after it ends; the next run replaces them. The tokens, secrets of an agent
that is gone, do not stay.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import grpc

from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.acl import MeshTokens
from deptmesh.registry.agent import ConsulNotFound, DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryRefused
from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from deptmesh.services.company_policy import apply_company_policy, company_policy
from deptmesh.services.money import Amount
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.cli import main as deptmesh_command
from deptmesh.sidecar.host import DepartmentProcess
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity, IdentitySource, own_spiffe_id
from deptmesh.sidecar.reference import build_site
from deptmesh.sidecar.tracing import Tracing, tag_current_call

CLAIMANT, PEER, MANAGER = "E1002", "E1003", "E1001"
# The demo calls as a Connect service of its own, with a token like a department's.
CONSOLE = "demo-console"
DEPARTMENTS = ("hr", "finance", "reimbursement")
# The usage ledger, a department of its own; the platform identity reads its statements.
LEDGER = "metering"
PLATFORM = "platform"
BILL = ["bill", "--month", "current", "--department", "reimbursement"]
AMOUNT = money_pb2.Money(currency_code="EUR", units=42, nanos=500_000_000)


def say(text: str = "", end: str = "\n") -> None:
    print(text, end=end, flush=True)


def money(value: money_pb2.Money) -> str:
    return str(Amount.from_proto(value))


def state(claim: reimbursement_pb2.Claim) -> str:
    return reimbursement_pb2.ClaimState.Name(claim.state).removeprefix("CLAIM_STATE_")


def refusal(error: grpc.RpcError) -> str:
    return f"{error.code().name}: {error.details()}"


def token_files(tokens: MeshTokens, workdir: Path) -> dict[str, Path]:
    """Each department's token in a file of its own (mode 0600), as a host hands it over."""
    return {
        name: token.write_file(workdir / f"{name}.token")
        for name, token in tokens.departments.items()
    }


def start_departments(
    stack: ExitStack,
    workdir: Path,
    consul: str,
    tokens: Mapping[str, Path],
    say: Callable[[str], None] = say,
    extra: Sequence[str] = (),
) -> None:
    """HR, two finance replicas and reimbursement as processes, each with its token file."""

    def start(name: str, replica: int = 1) -> None:
        process = stack.enter_context(
            DepartmentProcess(
                f"deptmesh.services.{name}",
                [
                    *("--port", "0", "--db", str(workdir / f"{name}.db"), "--seed-demo-data"),
                    *("--consul-address", consul, "--consul-token-file", str(tokens[name])),
                    *extra,
                ],
                workdir / f"{name}-{replica}.log",
            )
        )
        say(f"  started {name:<14} on {process.start()} (mTLS)")

    start("hr")
    start("finance")
    start("finance", replica=2)  # a second replica over the same database
    start("reimbursement")


def start_ledger(
    stack: ExitStack,
    workdir: Path,
    consul: str,
    tokens: Mapping[str, Path],
    say: Callable[[str], None] = say,
    extra: Sequence[str] = (),
) -> None:
    """The usage ledger as a process with its token file; the departments report to it."""
    process = stack.enter_context(
        DepartmentProcess(
            f"deptmesh.services.{LEDGER}",
            [
                *("--port", "0", "--db", str(workdir / f"{LEDGER}.db")),
                *("--consul-address", consul, "--consul-token-file", str(tokens[LEDGER])),
                *extra,
            ],
            workdir / f"{LEDGER}-1.log",
        )
    )
    say(f"  started {LEDGER:<14} on {process.start()} (mTLS): the usage ledger")


def start_portal(
    stack: ExitStack, workdir: Path, consul: str, platform_token: Path, store: Path
) -> str:
    """`deptmesh portal` as a process over this mesh, stopped with `stack`; its address."""
    portal = stack.enter_context(
        DepartmentProcess(
            "deptmesh.services.portal",
            [
                *("--consul-address", consul, "--consul-token-file", str(platform_token)),
                *("--trace-store", str(store)),
            ],
            workdir / "portal.log",
        )
    )
    address = portal.start()
    say(f"  the developer portal serves the mesh at http://{address}/ while the demo runs")
    return address


def wait_until_healthy(registry: ConsulRegistry, expected: dict[str, int]) -> None:
    """Polls Consul until its own gRPC health checks pass for every instance."""
    deadline = time.monotonic() + 30
    while any(len(registry.resolve(name)) < n for name, n in expected.items()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"services did not turn healthy in Consul: {expected}")
        time.sleep(0.1)


def demo_directory(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the demo leaves its trace store, logs and databases: $XDG_STATE_HOME/deptmesh/demo,
    else ~/.local/state/deptmesh/demo (beside the trace store `deptmesh trace` reads)."""
    state = environ.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "deptmesh" / "demo"


BUDGET_READS = 20


def drive_claim(cache: EndpointCache, identity: IdentitySource, tracing: Tracing) -> str | None:
    """The claim's story in one root span, then reads across the replicas; the claim id
    if it ended PAID."""
    with (
        client.connect(
            "reimbursement", cache, identity=identity, tracing=tracing
        ) as claims_channel,
        client.connect("finance", cache, identity=identity, tracing=tracing) as finance_channel,
    ):
        claims = reimbursement_pb2_grpc.ReimbursementServiceStub(claims_channel)
        payments = finance_pb2_grpc.PaymentServiceStub(finance_channel)
        budgets = finance_pb2_grpc.BudgetServiceStub(finance_channel)
        with tracing.span("demo: one expense claim"):
            claim = tell_the_claim(claims, payments, budgets)
        if claim is None:
            return None
    show_budget_reads(cache, identity, tracing)
    return claim.claim_id


def show_budget_reads(cache: EndpointCache, identity: IdentitySource, tracing: Tracing) -> None:
    """Budget reads over a channel of their own, whose counts are those reads alone (the
    claim's channel has counted step 5's calls too)."""
    say(f"6. {BUDGET_READS} budget reads from here, balanced across the finance replicas")
    with client.connect("finance", cache, identity=identity, tracing=tracing) as channel:
        budgets = finance_pb2_grpc.BudgetServiceStub(channel)
        for _ in range(BUDGET_READS):
            budgets.GetBudget(finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG"))
        for address, calls in channel.balancer().call_counts().items():
            say(f"   finance at {address}: {calls} calls")


def tell_the_claim(
    claims: reimbursement_pb2_grpc.ReimbursementServiceStub,
    payments: finance_pb2_grpc.PaymentServiceStub,
    budgets: finance_pb2_grpc.BudgetServiceStub,
) -> reimbursement_pb2.Claim | None:
    """Steps 1 to 5: the claim from submission to payout; the claim if it was paid once."""
    say(f'1. {CLAIMANT} (Alan Turing) submits {money(AMOUNT)} for "Train to a conference"')
    claim = claims.SubmitClaim(
        reimbursement_pb2.SubmitClaimRequest(
            employee_id=CLAIMANT, amount=AMOUNT, description="Train to a conference"
        )
    ).claim
    say(f"   -> {claim.claim_id} is {state(claim)}")
    tag_current_call("claim", claim.claim_id)  # the demo's root span, where no message passes

    say(f"2. {PEER} (Katherine Johnson), a colleague, tries to approve it")
    try:
        claims.ApproveClaim(
            reimbursement_pb2.ApproveClaimRequest(claim_id=claim.claim_id, approver_id=PEER)
        )
        say("   -> unexpectedly accepted")
        return None
    except grpc.RpcError as error:
        say(f"   -> refused, {refusal(error)}")

    say(f"3. {MANAGER} (Grace Hopper), Alan's manager as HR says, approves it")
    claim = claims.ApproveClaim(
        reimbursement_pb2.ApproveClaimRequest(claim_id=claim.claim_id, approver_id=MANAGER)
    ).claim
    say(f"   -> {state(claim)}: reservation {claim.reservation_id}, payout {claim.payout_id}")

    say("4. Approving it again")
    try:
        claims.ApproveClaim(
            reimbursement_pb2.ApproveClaimRequest(claim_id=claim.claim_id, approver_id=MANAGER)
        )
        say("   -> unexpectedly accepted")
        return None
    except grpc.RpcError as error:
        say(f"   -> refused, {refusal(error)}")

    say("5. What finance recorded")
    payout = payments.GetPayout(finance_pb2.GetPayoutRequest(payout_id=claim.payout_id)).payout
    say(f"   payout {payout.payout_id}: {money(payout.amount)} to {payout.payee_employee_id}")
    ledger = payments.ListLedgerEntries(
        finance_pb2.ListLedgerEntriesRequest(cost_center_id="CC-ENG")
    ).entries
    for entry in ledger:
        say(f"   ledger #{entry.entry_id}: {money(entry.amount)} from {entry.cost_center_id}")
    budget = budgets.GetBudget(finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG")).budget
    say(
        f"   budget CC-ENG: allocated {money(budget.allocated)}, spent {money(budget.spent)},"
        f" available {money(budget.available)}"
    )
    return claim if state(claim) == "PAID" and len(ledger) == 1 else None


def show_hr_cannot_pay(cache: EndpointCache, hr: IdentitySource, tracing: Tracing) -> str | None:
    """hr's certificate calls Payout; the id of that trace if finance refused it."""
    say()
    say("7. HR's own certificate tries finance's Payout directly")
    with (
        client.connect("finance", cache, identity=hr, tracing=tracing) as channel,
        tracing.span("demo: hr tries to pay") as root,
    ):
        trace_id = format(root.get_span_context().trace_id, "032x")
        payments = finance_pb2_grpc.PaymentServiceStub(channel)
        try:
            payments.Payout(
                finance_pb2.PayoutRequest(
                    idempotency_key="hr-1",
                    reservation_id="rsv_x",
                    payee_employee_id="E1001",
                    amount=AMOUNT,
                )
            )
        except grpc.RpcError as error:
            say(f"   -> refused, {refusal(error)}")
            return trace_id if error.code() is grpc.StatusCode.PERMISSION_DENIED else None
    say("   -> unexpectedly accepted")
    return None


def main() -> int:
    """The demo's exit code; without Consul, one line on what it needs instead of a traceback."""
    try:
        return run_demo()
    except ConsulNotFound as error:
        print(f"deptmesh demo needs a Consul agent: {error}", file=sys.stderr)
        return 1


def run_demo() -> int:
    say("deptmesh demo: one expense claim across three departments")
    say()
    workdir = demo_directory()
    # The previous run's files go: this run's trace store holds this run's traces only.
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    store = workdir / "traces.sqlite"
    reference = build_site(workdir / "reference", policy=company_policy())
    with (
        tempfile.TemporaryDirectory(prefix="deptmesh-demo-tokens-") as secrets,
        ExitStack() as stack,
    ):
        claim_id, denied_trace, consul = run_departments(stack, workdir, Path(secrets), store)
        statement = show_statement(consul, Path(secrets))
    say("stopped every service (their last spans flushed to the trace store)")
    if claim_id is not None:
        show_trace("8. The claim as on-call sees it:", ["--claim", claim_id, "--store", str(store)])
    if denied_trace is not None:
        show_trace("9. The refused payment:", [denied_trace, "--store", str(store)])
    say()
    say(f"The trace store and the services' logs stay in {workdir} for the commands above;")
    say(f"the next run replaces them. To delete them: rm -r {workdir}")
    say(f"The API reference, built from the contracts (no server needed): {reference}")
    say()
    say(f"10. What reimbursement owes for the month so far: deptmesh {shlex.join(BILL)}")
    say(statement or "  (the ledger gave no statement)\n", end="")
    ok = claim_id is not None and denied_trace is not None and statement != ""
    say("demo succeeded: the claim is PAID, once; hr may not pay" if ok else "demo FAILED")
    return 0 if ok else 1


def run_departments(
    stack: ExitStack, workdir: Path, secrets: Path, store: Path
) -> tuple[str | None, str | None, str]:
    """Starts Consul, the ledger and the departments (logs and databases in `workdir`, token
    files in `secrets`), drives the claim and hr's attempt to pay, then stops the
    departments (the ledger and Consul stay, for the statement); and Consul's address."""
    agent = stack.enter_context(DevAgent())
    say(f"  started consul dev agent on {agent.address}, ACLs on (default deny)")
    tokens = agent.admin().mesh_tokens((*DEPARTMENTS, CONSOLE, LEDGER))
    files = token_files(tokens, secrets)
    tokens.platform.write_file(secrets / f"{PLATFORM}.token")
    say(f"  a token per department (its own leaf and registration) in {secrets}/<name>.token")
    show_refusals(agent.address, files["hr"])
    platform = ConsulRegistry(agent.address, token=tokens.platform.secret_id)
    apply_company_policy(
        platform, (CONSOLE, "reimbursement", "allow"), (CONSOLE, "finance", "allow")
    )
    say("  intentions, method rules, quota tiers and rate cards written with the platform's token")
    start_ledger(stack, workdir, agent.address, files, extra=("--log-format", "console"))
    # The departments stop first, shipping their last usage to the ledger as they drain.
    departments = stack.enter_context(ExitStack())
    start_departments(
        departments,
        workdir,
        agent.address,
        files,
        extra=("--trace-store", str(store), "--log-format", "console"),
    )
    # The demo's own console is a Connect service with a department's kind of token.
    registry = ConsulRegistry(agent.address, token_file=files[CONSOLE])
    expected = {"hr": 1, "finance": 2, "reimbursement": 1, LEDGER: 1}
    wait_until_healthy(registry, expected)
    say(f"  Consul's gRPC health checks pass for all {sum(expected.values())} instances")
    start_portal(stack, workdir, agent.address, secrets / f"{PLATFORM}.token", store)
    say(f"  every call is traced into {store.name}; service logs are in {workdir}")
    say(
        "  (their 'E... No match found for server name' lines are gRPC's own note on each"
        " mTLS connection, not a fault: see the README)"
    )
    say()
    cache = departments.enter_context(contextlib.closing(EndpointCache(registry)))
    # The demo calls as a Connect service of its own, over mTLS like everyone.
    identity = ConsulConnectIdentity(registry, CONSOLE)
    departments.callback(identity.stop)
    say(f"  calling as {identity().trust_domain} service {CONSOLE} (mTLS)")
    tracing = Tracing.start(CONSOLE, store_path=store, spiffe_id=own_spiffe_id(identity))
    departments.callback(tracing.shutdown)
    claim_id = drive_claim(cache, identity, tracing)
    # Only hr's token obtains hr's leaf.
    hr_identity = ConsulConnectIdentity(ConsulRegistry(agent.address, token_file=files["hr"]), "hr")
    departments.callback(hr_identity.stop)
    hr_tracing = Tracing.start("hr", store_path=store, spiffe_id=own_spiffe_id(hr_identity))
    departments.callback(hr_tracing.shutdown)
    denied_trace = show_hr_cannot_pay(cache, hr_identity, hr_tracing)
    say()
    departments.close()
    return claim_id, denied_trace, agent.address


def show_statement(consul: str, secrets: Path) -> str:
    """Reimbursement's statement for the month to date, from the ledger, as the platform;
    "" if the ledger refused."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = deptmesh_command(
            [
                *BILL,
                *("--as", PLATFORM, "--consul-address", consul),
                *("--consul-token-file", str(secrets / f"{PLATFORM}.token")),
            ]
        )
    return out.getvalue() if status == 0 else ""


def show_refusals(consul: str, hr_token: Path) -> None:
    """Consul hands finance's certificate neither to an anonymous caller nor to hr."""
    for who, registry in (
        ("anonymous", ConsulRegistry(consul, token="")),
        ("hr's token", ConsulRegistry(consul, token_file=hr_token)),
    ):
        try:
            registry.connect_leaf("finance", 0, 0)
            say(f"  {who} obtained finance's Connect leaf: unexpectedly")
        except RegistryRefused as error:
            say(f"  {who} asking for finance's Connect leaf: {error}")


def show_trace(title: str, arguments: list[str]) -> None:
    """Prints `title` and the `deptmesh trace` command, then runs it: the same command
    typed after the demo shows the same trace."""
    say()
    say(f"{title} deptmesh trace {shlex.join(arguments)}")
    deptmesh_command(["trace", *arguments])


if __name__ == "__main__":
    sys.exit(main())
