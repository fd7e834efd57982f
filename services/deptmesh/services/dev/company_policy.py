"""The company's policy, applied to the local mesh: one function, so that where the
policy comes from (today intentions.py and quota_tiers.py) can change in one place."""

from __future__ import annotations

from pathlib import Path

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services import intentions, quota_tiers

__all__ = ["apply_company_policy"]


def apply_company_policy(consul_address: str, platform_token_file: Path) -> None:
    """Writes the intentions, method rules and quota tiers with the platform's token."""
    platform = ConsulRegistry(consul_address, token_file=platform_token_file)
    intentions.apply(platform)
    quota_tiers.apply(platform)
