"""The `deptmesh` command (main.py) and what its subcommands print."""

from deptmesh.sidecar.cli.command import COMMANDS_GROUP, main

__all__ = ["COMMANDS_GROUP", "main"]
