"""Publishes a service instance's usage to Consul KV, for `deptmesh quota` and chargeback.

Each instance writes its metering stage's snapshot as JSON to
`deptmesh/usage/<service>/<instance id>` every few seconds (only when it
changed) and once more when it stops, from a thread: nothing on the call path.
A department's Consul token may write under its own service's prefix only. A
report that fails is logged (`usage_report_failed`; a refused one once,
`usage_report_refused`, until one succeeds again) and tried again next time.
"""

from __future__ import annotations

import json
import threading

import structlog

from deptmesh.registry.acl import USAGE_PREFIX
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.protocol import RegistryRefused, RegistryUnavailable
from deptmesh.sidecar.metering.stage import MeteringStage

__all__ = ["USAGE_PREFIX", "UsageReporter"]

_log = structlog.get_logger("deptmesh.sidecar")


class UsageReporter:
    def __init__(
        self,
        registry: ConsulRegistry,
        usage: MeteringStage,
        instance_id: str,
        *,
        interval_seconds: float = 2.0,
    ) -> None:
        self._registry = registry
        self._usage = usage
        self._key = f"{USAGE_PREFIX}{usage.service}/{instance_id}"
        self._instance_id = instance_id
        self._interval = interval_seconds
        self._stopping = threading.Event()
        self._published = ""
        self._refused = False
        self._thread = threading.Thread(target=self._run, name="usage-report", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops reporting after publishing what was counted last."""
        self._stopping.set()
        self._thread.join(timeout=10)
        self.publish()

    def publish(self) -> None:
        document = json.dumps(
            {
                "service": self._usage.service,
                "instance": self._instance_id,
                "usage": self._usage.snapshot(),
            },
            sort_keys=True,
        )
        if document == self._published:
            return
        try:
            self._registry.kv_put(self._key, document)
        except RegistryRefused as error:
            if not self._refused:
                _log.error("usage_report_refused", reason=str(error))
            self._refused = True
            return
        except RegistryUnavailable as error:
            _log.warning("usage_report_failed", reason=str(error))
            return
        self._refused = False
        self._published = document

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.publish()
