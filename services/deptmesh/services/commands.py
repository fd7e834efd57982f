"""The `deptmesh` subcommands this package adds (the `deptmesh.commands` entry points)."""

from __future__ import annotations

import argparse
from typing import Any


def _run_demo(_: argparse.Namespace) -> int:
    from deptmesh.services import demo  # imported when run: `deptmesh --help` stays quick

    return demo.main()


def add_demo_command(commands: Any) -> None:
    """Adds `deptmesh demo` to the command's subparsers."""
    demo = commands.add_parser(
        "demo", help="start the three departments and drive one claim to PAID"
    )
    demo.set_defaults(run=_run_demo)
