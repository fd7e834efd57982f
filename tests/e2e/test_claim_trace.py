"""One expense claim through the three running departments, seen as one trace.

Everything is real: a Consul dev agent with ACLs on (default deny), the services as
processes with their own tokens, on mTLS with Connect certificates and the company's
intentions, their spans in one local trace store, their access logs in their log files.
"""

from __future__ import annotations

import json
import os
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from deptmesh.common.v1 import money_pb2
from deptmesh.registry.agent import DevAgent
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from deptmesh.services import intentions
from deptmesh.services.demo import (
    DEPARTMENTS,
    start_departments,
    token_files,
    wait_until_healthy,
)
from deptmesh.sidecar.channel import client
from deptmesh.sidecar.identity.sources import ConsulConnectIdentity, own_spiffe_id
from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing import attributes as attr
from deptmesh.sidecar.tracing.store import TraceStore
from deptmesh.sidecar.tracing.tags import key_attribute

CLAIMANT, MANAGER = "E1002", "E1001"
CLAIM = key_attribute("claim")


def run_claim(workdir: Path) -> tuple[str, Path, dict[str, str], dict[tuple[str, ...], float]]:
    """Starts everything, pays one claim inside one root span that names no claim (the
    claim is on reimbursement's spans because its contract says which fields carry
    one); returns the claim id, the trace store, the SPIFFE ID of each service and
    reimbursement's request counts as its metrics endpoint showed them. Every process
    has stopped on return."""
    store = Path(os.environ["DEPTMESH_TRACE_STORE"])
    with DevAgent() as agent, ExitStack() as stack:
        tokens = agent.admin().mesh_tokens([*DEPARTMENTS, "claims-e2e"])
        platform = ConsulRegistry(agent.address, token=tokens.platform.secret_id)
        intentions.apply(platform, ("claims-e2e", "reimbursement", "allow"))
        files = token_files(tokens, workdir)
        start_departments(stack, workdir, agent.address, files, say=lambda *_: None)
        registry = ConsulRegistry(agent.address, token_file=files["claims-e2e"])
        wait_until_healthy(registry, {"hr": 1, "finance": 2, "reimbursement": 1})
        identity = ConsulConnectIdentity(registry, "claims-e2e")
        stack.callback(identity.stop)
        tracing = Tracing.start("claims-e2e", store_path=store, spiffe_id=own_spiffe_id(identity))
        cache = EndpointCache(registry)
        stack.callback(cache.close)
        with (
            client.connect("reimbursement", cache, identity=identity, tracing=tracing) as channel,
            tracing.span("expense claim"),
        ):
            claims = reimbursement_pb2_grpc.ReimbursementServiceStub(channel)
            claim = claims.SubmitClaim(
                reimbursement_pb2.SubmitClaimRequest(
                    employee_id=CLAIMANT,
                    amount=money_pb2.Money(currency_code="EUR", units=42),
                    description="Train to a conference",
                )
            ).claim
            paid = claims.ApproveClaim(
                reimbursement_pb2.ApproveClaimRequest(claim_id=claim.claim_id, approver_id=MANAGER)
            ).claim
        assert reimbursement_pb2.ClaimState.Name(paid.state) == "CLAIM_STATE_PAID"
        trust_domain = identity().trust_domain
        [reimbursement] = registry.resolve("reimbursement")
        metrics = scrape(reimbursement.address, reimbursement.meta["metrics_port"])
        tracing.shutdown()
    # The services flushed their spans when they stopped, with the ExitStack.
    spiffe = {
        name: f"spiffe://{trust_domain}/ns/default/dc/dc1/svc/{name}"
        for name in ("claims-e2e", "reimbursement", "hr", "finance")
    }
    return claim.claim_id, store, spiffe, metrics


def scrape(host: str, port: str) -> dict[tuple[str, ...], float]:
    """requests_total of a service's Prometheus endpoint, by (caller, method, status)."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.labels["caller"], sample.labels["method"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "deptmesh_rpc_server_requests"
        for sample in family.samples
        if sample.name == "deptmesh_rpc_server_requests_total"
    }


def test_one_claim_is_one_trace_across_three_departments(tmp_path):
    """The claim's trace, found by its business key, holds the caller's root span,
    reimbursement's server spans (both tagged with the claim), its client spans and the
    hr and finance server spans they led to: every parent link crosses services
    correctly, every server span names its verified caller, the access-log events of
    every service carry the same trace id, and reimbursement's Prometheus endpoint
    (found through its Consul registration) counted the calls."""
    claim_id, store_path, spiffe, metrics = run_claim(tmp_path)
    submitted = ("claims-e2e", "/deptmesh.reimbursement.v1.ReimbursementService/SubmitClaim", "OK")
    assert metrics[submitted] == 1

    with TraceStore(store_path) as store:
        [trace_id] = store.trace_ids_tagged("claim", claim_id)
        spans = store.spans_of(trace_id)
    by_id = {span.span_id: span for span in spans}
    [root] = [span for span in spans if span.parent_span_id is None]
    assert (root.name, root.service) == ("expense claim", "claims-e2e")

    servers = [span for span in spans if span.kind == "server"]
    assert {span.service for span in servers} == {"reimbursement", "hr", "finance"}
    methods = {(span.service, span.attributes["rpc.method"]) for span in servers}
    assert {("reimbursement", "SubmitClaim"), ("reimbursement", "ApproveClaim")} <= methods
    tagged = {span.attributes["rpc.method"] for span in spans if CLAIM in span.attributes}
    assert tagged == {"SubmitClaim", "ApproveClaim"}
    assert {span.attributes[CLAIM] for span in spans if CLAIM in span.attributes} == {claim_id}
    assert ("hr", "GetEmployee") in methods or ("hr", "GetManagerChain") in methods
    assert ("finance", "Payout") in methods

    for server in servers:
        client_span = by_id[server.parent_span_id]
        assert client_span.kind == "client"
        assert client_span.attributes[attr.CALLEE_SERVICE] == server.service
        caller = client_span.service
        assert server.attributes[attr.CALLER_SERVICE] == caller
        assert server.attributes[attr.CALLER_SPIFFE_ID] == spiffe[caller]
        assert server.attributes["rpc.grpc.status_code"] == 0
        # A department's client span hangs under the server span it was handling.
        if caller != "claims-e2e":
            parent = by_id[client_span.parent_span_id]
            assert (parent.kind, parent.service) == ("server", caller)
    assert {server.attributes[attr.CALLER_SERVICE] for server in servers} == {
        "claims-e2e",
        "reimbursement",
    }

    # Finance's two replicas share its calls between them.
    logs = {
        "reimbursement": ["reimbursement-1"],
        "hr": ["hr-1"],
        "finance": ["finance-1", "finance-2"],
    }
    for service, files in logs.items():
        lines = [
            line
            for name in files
            for line in (tmp_path / f"{name}.log").read_text().splitlines()
            if line.startswith('{"event": "call"')
        ]
        mine = [event for event in map(json.loads, lines) if event["trace_id"] == trace_id]
        assert mine, f"{service} logged no call of the trace"
        assert {event["span_id"] for event in mine} <= set(by_id)
        assert {event["status"] for event in mine} == {"OK"}
