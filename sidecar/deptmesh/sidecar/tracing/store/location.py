"""Where the local trace store lives when nobody says."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["default_store_path"]


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """$DEPTMESH_TRACE_STORE, else $XDG_STATE_HOME/deptmesh/traces.sqlite, else
    ~/.local/state/deptmesh/traces.sqlite. The exporter creates the directory."""
    env = os.environ if environ is None else environ
    if explicit := env.get("DEPTMESH_TRACE_STORE"):
        return Path(explicit).expanduser()
    state_home = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "deptmesh" / "traces.sqlite"
