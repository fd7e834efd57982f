"""Usage per (caller, method, status), counted off the call's path.

stage.py is the metering stage of the server chain (a call's end is one queue
append); drainer.py the thread that counts and logs in batches; access_log.py
one JSON line per call; metrics.py the Prometheus endpoint rendered from the
counts; report.py each instance's usage published to Consul KV. For the usage
ledger: minutes.py counts usage per minute in the drain, shipper.py ships it
through the mesh, spool.py keeps it on disk until the ledger has it.
rate_card.py is the model of the prices the ledger's statements apply.
"""

from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.metrics import MetricsEndpoint, UsageCollector
from deptmesh.sidecar.metering.minutes import MinuteUsage, UsageByMinute
from deptmesh.sidecar.metering.report import USAGE_PREFIX, UsageReporter
from deptmesh.sidecar.metering.shipper import UsageShipper, run_id
from deptmesh.sidecar.metering.spool import UsageSpool
from deptmesh.sidecar.metering.stage import LATENCY_BUCKETS_S, MeteringStage, UsageRecord

__all__ = [
    "LATENCY_BUCKETS_S",
    "USAGE_PREFIX",
    "AccessLog",
    "MeteringStage",
    "MetricsEndpoint",
    "MinuteUsage",
    "UsageByMinute",
    "UsageCollector",
    "UsageRecord",
    "UsageReporter",
    "UsageShipper",
    "UsageSpool",
    "run_id",
]
