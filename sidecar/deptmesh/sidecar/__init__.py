"""deptmesh.sidecar: the in-process mesh around a department's gRPC servers and channels.

What a service team needs, and nothing else: a server (`Server`, or `AioServer`
on grpc.aio) whose chain verifies the caller's certificate, authorizes, meters,
throttles and traces every call; `connect` (or `aio_connect`) for calling other
departments by name; `current_caller()` inside a handler; the tracing handle
and `tag_current_call`; the error tree handlers raise; and the host that runs a
department declared as data (`Department`, whose `build(host: HostContext)`
returns a `Closer`) as a process: `run_department`. The concerns behind them
live one folder each: chain/, server/, channel/, identity/, authorization/,
quotas/, tracing/, metering/, deadline/, host/, cli/.
"""

from deptmesh.sidecar.caller import Caller, current_caller
from deptmesh.sidecar.channel import AioServiceChannel, ServiceChannel, aio_connect, connect
from deptmesh.sidecar.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ServiceError,
    Unavailable,
)
from deptmesh.sidecar.host import Closer, Department, HostContext, run_department
from deptmesh.sidecar.server import AioServer, Server
from deptmesh.sidecar.tracing import Tracing, tag_current_call

__all__ = [
    "AioServer",
    "AioServiceChannel",
    "AlreadyExists",
    "Caller",
    "Closer",
    "Department",
    "FailedPrecondition",
    "FieldViolation",
    "HostContext",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "Server",
    "ServiceChannel",
    "ServiceError",
    "Tracing",
    "Unavailable",
    "aio_connect",
    "connect",
    "current_caller",
    "run_department",
    "tag_current_call",
]
