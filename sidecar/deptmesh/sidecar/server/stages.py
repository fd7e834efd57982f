"""The server chain: its stages, in the order every server runs them.

The order is declared here and only here (see ../shared/design.md): identity,
tracing, metering (usage, access log, metrics), deadline, authorization,
quota; the adapters (chain/_sync.py, chain/_aio.py) map what the handler
raises to a status around them. Identity comes first because everything keys
on it. Tracing and metering come before the decisions so that calls refused
for an expired deadline, denied or throttled are traced, logged and counted.
A call whose deadline has passed is refused before anything is decided for
it. Authorization comes before quota so that a caller who may not call spends
nothing.
"""

from __future__ import annotations

from deptmesh.sidecar.authorization.stage import AuthorizationStage, PolicySource
from deptmesh.sidecar.chain.core import Chain, Stage
from deptmesh.sidecar.deadline.stage import DeadlineStage
from deptmesh.sidecar.identity.sources import IdentitySource, own_spiffe_id
from deptmesh.sidecar.identity.stage import AnonymousIdentityStage, IdentityStage
from deptmesh.sidecar.metering.stage import MeteringStage
from deptmesh.sidecar.quotas.stage import QuotaStage
from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing.stage import TracingStage

__all__ = ["server_chain"]


def server_chain(
    identity_source: IdentitySource | None,
    authorization: tuple[str, PolicySource] | None,
    metering: MeteringStage | None,
    quotas: QuotaStage | None,
    tracing: Tracing | None,
) -> Chain:
    identity: Stage = (
        AnonymousIdentityStage()
        if identity_source is None
        else IdentityStage(identity_source().trust_domain)
    )
    stages: list[Stage | None] = [
        identity,
        None if tracing is None else TracingStage(tracing, own_spiffe_id(identity_source)),
        metering,
        DeadlineStage(),
        None if authorization is None else AuthorizationStage(*authorization),
        quotas,
    ]
    return Chain([stage for stage in stages if stage is not None])
