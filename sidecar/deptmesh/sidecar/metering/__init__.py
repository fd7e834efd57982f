"""Usage per (caller, method, status), counted off the call's path.

stage.py is the metering stage of the server chain (a call's end is one queue
append); drainer.py the thread that counts and logs in batches; access_log.py
one JSON line per call; metrics.py the Prometheus endpoint rendered from the
counts; report.py each instance's usage published to Consul KV.
"""

from deptmesh.sidecar.metering.access_log import AccessLog
from deptmesh.sidecar.metering.metrics import MetricsEndpoint, UsageCollector
from deptmesh.sidecar.metering.report import USAGE_PREFIX, UsageReporter
from deptmesh.sidecar.metering.stage import LATENCY_BUCKETS_S, MeteringStage, UsageRecord

__all__ = [
    "LATENCY_BUCKETS_S",
    "USAGE_PREFIX",
    "AccessLog",
    "MeteringStage",
    "MetricsEndpoint",
    "UsageCollector",
    "UsageRecord",
    "UsageReporter",
]
