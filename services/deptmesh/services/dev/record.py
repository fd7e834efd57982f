"""What `dev up` started, written down for the commands that come after it (dev.json).

The record is written as each process starts, before waiting for it, so that a
`dev up` that fails or is interrupted half way leaves nothing that `dev down`
cannot find.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from deptmesh.services.dev.detached import DetachedProcess

__all__ = ["MeshRecord", "read_record", "remove_record", "write_record"]


@dataclass(frozen=True, slots=True)
class MeshRecord:
    """The local mesh's processes: Consul's agent and each department."""

    consul_address: str
    trace_store: Path
    consul: DetachedProcess | None = None
    departments: Mapping[str, DetachedProcess] = field(default_factory=dict)
    # Where each department said it serves (HOST:PORT), once it has said so.
    addresses: Mapping[str, str] = field(default_factory=dict)

    @property
    def processes(self) -> list[DetachedProcess]:
        """Every recorded process, departments first (they leave Consul as they stop)."""
        return [*self.departments.values(), *([self.consul] if self.consul else [])]

    def with_department(self, process: DetachedProcess) -> MeshRecord:
        addresses = {name: a for name, a in self.addresses.items() if name != process.name}
        return replace(
            self, departments={**self.departments, process.name: process}, addresses=addresses
        )

    def with_address(self, name: str, address: str) -> MeshRecord:
        return replace(self, addresses={**self.addresses, name: address})

    def to_json(self) -> dict[str, Any]:
        return {
            "consul_address": self.consul_address,
            "trace_store": str(self.trace_store),
            "consul": None if self.consul is None else self.consul.to_json(),
            "departments": {name: p.to_json() for name, p in self.departments.items()},
            "addresses": dict(self.addresses),
        }

    @classmethod
    def from_json(cls, value: Any) -> MeshRecord:
        """The record `to_json` wrote (ValueError if it is not one)."""
        try:
            consul = value["consul"]
            return cls(
                consul_address=str(value["consul_address"]),
                trace_store=Path(value["trace_store"]),
                consul=None if consul is None else DetachedProcess.from_json(consul),
                departments={
                    str(name): DetachedProcess.from_json(process)
                    for name, process in value["departments"].items()
                },
                addresses={str(name): str(a) for name, a in value["addresses"].items()},
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a local mesh record: {error}") from error


def read_record(path: Path) -> MeshRecord | None:
    """The record at `path`; None if there is none (ValueError if it cannot be read as one)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return MeshRecord.from_json(json.loads(text))
    except ValueError as error:
        raise ValueError(f"{path} is not a local mesh record ({error}): remove it") from error


def write_record(path: Path, record: MeshRecord) -> None:
    """Replaces the record at `path` in one step: a reader never sees half of it."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(record.to_json(), indent=2) + "\n")
    os.replace(temporary, path)


def remove_record(path: Path) -> None:
    path.unlink(missing_ok=True)
