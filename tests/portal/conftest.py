"""The portal's browser tests: a mesh with the demo's departments and traffic, the
portal serving it, and a real headless Chromium (tests/browser.py).

The mesh is built as `make demo` builds it (deptmesh.services.demo's own steps):
Consul with ACLs and the company's policy, the usage ledger, hr, two finance
replicas and reimbursement as processes; the demo's claim driven to PAID and
hr's refused payment. The portal runs as the demo starts it (`deptmesh portal` as
a process), reading Consul and the ledger as the platform and the trace store; the
mesh runs no Prometheus or Alertmanager, so the alerts page shows how a page
degrades.
"""

from __future__ import annotations

import contextlib
import re
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services import demo
from deptmesh.services.company_policy import apply_company_policy
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity, own_spiffe_id
from deptmesh.sidecar.tracing import Tracing
from tests.browser import (  # noqa: F401 -- fixtures, found by name
    ARTEFACTS_KEY,
    browser,
    browser_page,
    chromium_executable,
    screenshots,
)
from tests.integration.servers import wait_for

# The edges the demo's traffic makes: its console files and approves the claim and
# reads budgets; reimbursement asks hr and finance; hr's payment is refused.
DEMO_EDGES = {
    ("demo-console", "reimbursement"),
    ("demo-console", "finance"),
    ("reimbursement", "hr"),
    ("reimbursement", "finance"),
    ("hr", "finance"),
}
_EDGE = re.compile(r'<g class="edge \w+" data-caller="([^"]+)" data-callee="([^"]+)"')


@dataclass(frozen=True)
class PortalUnderTest:
    url: str
    address: str
    claim_id: str
    refused_trace: str


def _quiet(text: str = "", end: str = "\n") -> None:
    """The demo's steps say what they do; here nobody listens."""


def _edges(url: str) -> set[tuple[str, str]]:
    with urllib.request.urlopen(f"{url}/graph", timeout=30) as page:
        return set(_EDGE.findall(page.read().decode()))


@pytest.fixture(scope="package")
def portal(tmp_path_factory) -> Iterator[PortalUnderTest]:
    """The mesh with the demo's traffic and the portal over it, stopped at the end."""
    workdir = tmp_path_factory.mktemp("portal-mesh")
    store = workdir / "traces.sqlite"
    with ExitStack() as stack:
        agent = stack.enter_context(DevAgent())
        tokens = agent.admin().mesh_tokens((*demo.DEPARTMENTS, demo.CONSOLE, demo.LEDGER))
        files = demo.token_files(tokens, workdir)
        platform_token = tokens.platform.write_file(workdir / "platform.token")
        apply_company_policy(
            ConsulRegistry(agent.address, token=tokens.platform.secret_id),
            (demo.CONSOLE, "reimbursement", "allow"),
            (demo.CONSOLE, "finance", "allow"),
        )
        quick = ("--usage-flush-seconds", "0.5", "--drain-seconds", "0")
        demo.start_ledger(stack, workdir, agent.address, files, _quiet, quick)
        demo.start_departments(
            stack, workdir, agent.address, files, _quiet, (*quick, "--trace-store", str(store))
        )
        registry = ConsulRegistry(agent.address, token_file=files[demo.CONSOLE])
        demo.wait_until_healthy(
            registry, {"hr": 1, "finance": 2, "reimbursement": 1, "metering": 1}
        )
        claim_id, refused_trace = _demo_traffic(stack, workdir, agent.address, files, store)
        address = demo.start_portal(stack, workdir, agent.address, platform_token, store)
        url = f"http://{address}"
        wait_for(lambda: _edges(url) >= DEMO_EDGES, 30, "the ledger counting the demo's calls")
        yield PortalUnderTest(url, address, claim_id, refused_trace)


def _demo_traffic(
    stack: ExitStack, workdir: Path, consul: str, files: dict[str, Path], store: Path
) -> tuple[str, str]:
    """The demo's claim, budget reads and hr's refused payment; the claim's id and the
    refused payment's trace."""
    with contextlib.redirect_stdout(None), ExitStack() as calls:
        registry = ConsulRegistry(consul, token_file=files[demo.CONSOLE])
        cache = calls.enter_context(contextlib.closing(EndpointCache(registry)))
        console = ConsulConnectIdentity(registry, demo.CONSOLE)
        calls.callback(console.stop)
        tracing = Tracing.start(demo.CONSOLE, store_path=store, spiffe_id=own_spiffe_id(console))
        calls.callback(tracing.shutdown)
        claim_id = demo.drive_claim(cache, console, tracing)
        hr = ConsulConnectIdentity(ConsulRegistry(consul, token_file=files["hr"]), "hr")
        calls.callback(hr.stop)
        hr_tracing = Tracing.start("hr", store_path=store, spiffe_id=own_spiffe_id(hr))
        calls.callback(hr_tracing.shutdown)
        refused = demo.show_hr_cannot_pay(cache, hr, hr_tracing)
    assert claim_id is not None
    assert refused is not None
    return claim_id, refused


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Says where the browser tests' screenshots are, when they took any."""
    folder = config.stash.get(ARTEFACTS_KEY, None)
    if folder is not None and any(folder.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {folder}")
