"""Alertmanager's configuration: each alert to its department's owners, by webhook.

An alert reaches the owners of its `department` label (the callee, or the
instance's department); an alert about a caller's traffic (`kind="traffic"`)
reaches the caller's owners too. Each department's receiver is a webhook, at
`webhook_url` with `{department}` replaced by its name; alerts of no known
department go to the platform's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["PLATFORM_RECEIVER", "alertmanager_config"]

PLATFORM_RECEIVER = "platform"


def _receiver(name: str, url: str | None) -> dict[str, Any]:
    if url is None:
        return {"name": name}  # held and shown, sent nowhere
    return {"name": name, "webhook_configs": [{"url": url, "send_resolved": True}]}


def alertmanager_config(
    departments: Iterable[str],
    webhook_url: str | None,
    *,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
) -> dict[str, Any]:
    """The configuration's content (JSON, which Alertmanager reads as the YAML it is);
    `webhook_url` None: receivers that send nowhere (a local mesh: `deptmesh alerts`
    and Alertmanager's UI show what fires)."""
    names = sorted(set(departments))
    # `match` rather than `matchers`: Alertmanager 0.21 (Debian bullseye's) knows no other.
    caller_routes = [
        {
            "match": {"kind": "traffic", "caller": name},
            "receiver": f"department-{name}",
            "continue": True,
        }
        for name in names
    ]
    callee_routes = [
        {"match": {"department": name}, "receiver": f"department-{name}"} for name in names
    ]
    return {
        "route": {
            "receiver": PLATFORM_RECEIVER,
            "group_by": ["alertname", "department", "caller"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
            "routes": caller_routes + callee_routes,
        },
        "receivers": [
            _receiver(PLATFORM_RECEIVER, _url(webhook_url, PLATFORM_RECEIVER)),
            *(_receiver(f"department-{name}", _url(webhook_url, name)) for name in names),
        ],
    }


def _url(template: str | None, department: str) -> str | None:
    return None if template is None else template.replace("{department}", department)
