"""What Alertmanager holds as firing, read from its API (v2), for `deptmesh alerts`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AlertmanagerUnavailable", "FiringAlert", "firing_alerts"]


class AlertmanagerUnavailable(RuntimeError):
    """Alertmanager did not answer, or answered something that is not its API."""


@dataclass(frozen=True)
class FiringAlert:
    name: str
    labels: Mapping[str, str]
    summary: str
    runbook: str
    starts_at: str
    silenced: bool = False
    receivers: tuple[str, ...] = field(default=())


def firing_alerts(url: str, timeout: float = 10.0) -> list[FiringAlert]:
    """The alerts Alertmanager at `url` (http://HOST:PORT) holds, active or silenced,
    by name then labels."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=timeout) as response:  # noqa: S310
            held = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise AlertmanagerUnavailable(f"cannot read alerts from {url}: {error}") from error
    if not isinstance(held, list):
        raise AlertmanagerUnavailable(f"{url}/api/v2/alerts did not answer a list")
    alerts = []
    for alert in held:
        labels = dict(alert.get("labels", {}))
        annotations = alert.get("annotations", {})
        state = alert.get("status", {}).get("state", "active")
        alerts.append(
            FiringAlert(
                name=labels.pop("alertname", "?"),
                labels=labels,
                summary=annotations.get("summary", ""),
                runbook=annotations.get("runbook", ""),
                starts_at=alert.get("startsAt", ""),
                silenced=state == "suppressed",
                receivers=tuple(r.get("name", "") for r in alert.get("receivers", [])),
            )
        )
    return sorted(alerts, key=lambda a: (a.name, sorted(a.labels.items())))
