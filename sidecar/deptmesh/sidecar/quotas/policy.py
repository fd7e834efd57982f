"""Per-caller quotas: the platform team's policy, validated.

The policy is a JSON document (in Consul KV at `deptmesh/policy/quotas`, or a
file without Consul; see quotas/sources.py):

    {
      "tiers": {
        "critical": {"rate": 200, "burst": 400, "max_in_flight": 64},
        "standard": {"rate": 50, "burst": 100, "max_in_flight": 16},
        "batch": {"rate": 5, "burst": 10, "max_in_flight": 2, "shadow": true}
      },
      "default_tier": "standard",
      "services": {
        "finance": {
          "callers": {"reimbursement": "critical", "payroll": "batch"},
          "methods": {
            "/deptmesh.finance.v1.PaymentService/ListLedgerEntries": {"*": "batch"}
          }
        }
      }
    }

- `rate` is tokens per second and `burst` the most tokens a caller can save
  up; both are service-wide: each of n healthy replicas enforces 1/n of them.
  A call takes its method's `quota_cost` (a method option in protos/, 1 when
  unset).
- `max_in_flight` is how many calls of one caller one replica runs at once.
- `shadow: true` counts what would be throttled without throttling anyone.
- `services.<destination>.callers` assigns callers (SPIFFE service names) to
  tiers; any other authenticated caller gets `default_tier`.
- `services.<destination>.methods` overrides the tier per exact method path, for
  one caller or for every caller ("*"); such a method gets its own bucket.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_QUOTAS", "Limits", "QuotaPolicy", "Tier", "parse_quota_policy"]

ANY_CALLER = "*"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    rate: float
    burst: float
    max_in_flight: int
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    """What applies to one caller calling one method: the tier and the bucket it draws on."""

    tier: Tier
    # Calls under a per-method override draw on their own bucket; others on the caller's.
    bucket_method: str


@dataclass(frozen=True, slots=True)
class _Destination:
    callers: dict[str, str]
    methods: dict[str, dict[str, str]]


class QuotaPolicy:
    """The tiers and who is in which, for every destination service."""

    def __init__(
        self, tiers: dict[str, Tier], default_tier: str, services: dict[str, _Destination]
    ) -> None:
        self.tiers = tiers
        self.default_tier = default_tier
        self._services = services

    def limits(self, destination: str, caller: str, method: str) -> Limits:
        rules = self._services.get(destination)
        if rules is not None:
            override = rules.methods.get(method)
            if override is not None:
                tier = override.get(caller) or override.get(ANY_CALLER)
                if tier is not None:
                    return Limits(self.tiers[tier], method)
            tier = rules.callers.get(caller)
            if tier is not None:
                return Limits(self.tiers[tier], "")
        return Limits(self.tiers[self.default_tier], "")

    def describe(self) -> dict[str, Any]:
        """The policy as a JSON-ready dict (what `deptmesh quota` prints)."""
        return {
            "tiers": {
                t.name: {
                    "rate": t.rate,
                    "burst": t.burst,
                    "max_in_flight": t.max_in_flight,
                    "shadow": t.shadow,
                }
                for t in self.tiers.values()
            },
            "default_tier": self.default_tier,
            "services": {
                name: {"callers": d.callers, "methods": d.methods}
                for name, d in self._services.items()
            },
        }


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object")
    return value


def _only_keys(value: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}")


def _positive(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{where} must be a positive number")
    return float(value)


def _tier(name: str, value: object) -> Tier:
    where = f"tiers.{name}"
    fields = _object(value, where)
    _only_keys(fields, {"rate", "burst", "max_in_flight", "shadow"}, where)
    missing = sorted({"rate", "burst", "max_in_flight"} - set(fields))
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    in_flight = fields["max_in_flight"]
    if isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 1:
        raise ValueError(f"{where}.max_in_flight must be a whole number >= 1")
    shadow = fields.get("shadow", False)
    if not isinstance(shadow, bool):
        raise ValueError(f"{where}.shadow must be true or false")
    return Tier(
        name,
        _positive(fields["rate"], f"{where}.rate"),
        _positive(fields["burst"], f"{where}.burst"),
        in_flight,
        shadow,
    )


def _assignments(value: object, tiers: dict[str, Tier], where: str) -> dict[str, str]:
    assigned = _object(value, where)
    for caller, tier in assigned.items():
        if tier not in tiers:
            raise ValueError(f"{where}.{caller}: no tier named {tier!r}")
    return dict(assigned)


def _destination(name: str, value: object, tiers: dict[str, Tier]) -> _Destination:
    where = f"services.{name}"
    fields = _object(value, where)
    _only_keys(fields, {"callers", "methods"}, where)
    methods = _object(fields.get("methods", {}), f"{where}.methods")
    for path in methods:
        service, slash, method = path.lstrip("/").partition("/")
        if not path.startswith("/") or not slash or not service or not method or "/" in method:
            raise ValueError(f"{where}.methods: {path!r} is not a /package.Service/Method path")
    return _Destination(
        _assignments(fields.get("callers", {}), tiers, f"{where}.callers"),
        {path: _assignments(v, tiers, f"{where}.methods.{path}") for path, v in methods.items()},
    )


def parse_quota_policy(document: str) -> QuotaPolicy:
    """The policy a JSON document states, or ValueError saying what is wrong with it."""
    try:
        root = _object(json.loads(document), "the quota policy")
    except json.JSONDecodeError as error:
        raise ValueError(f"the quota policy is not JSON: {error}") from error
    _only_keys(root, {"tiers", "default_tier", "services"}, "the quota policy")
    tiers = {name: _tier(name, t) for name, t in _object(root.get("tiers"), "tiers").items()}
    if not tiers:
        raise ValueError("tiers must name at least one tier")
    default = root.get("default_tier")
    if default not in tiers:
        raise ValueError(f"default_tier must name one of the tiers {sorted(tiers)}")
    services = _object(root.get("services", {}), "services")
    return QuotaPolicy(
        tiers,
        default,
        {name: _destination(name, value, tiers) for name, value in services.items()},
    )


# In force while no policy document exists: nobody is limited.
NO_QUOTAS = QuotaPolicy(
    {"unlimited": Tier("unlimited", math.inf, math.inf, 2**31)}, "unlimited", {}
)
