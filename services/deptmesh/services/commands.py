"""The `deptmesh` subcommands this package adds (the `deptmesh.commands` entry points)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_demo_command", "add_dev_command", "add_docs_command", "add_portal_command"]


def _run_demo(_: argparse.Namespace) -> int:
    from deptmesh.services import demo  # imported when run: `deptmesh --help` stays quick

    return demo.main()


def add_demo_command(commands: Any) -> None:
    """Adds `deptmesh demo` to the command's subparsers."""
    demo = commands.add_parser(
        "demo", help="start the three departments and drive one claim to PAID"
    )
    demo.set_defaults(run=_run_demo)


def _run_dev(args: argparse.Namespace) -> int:
    from deptmesh.services.dev import command

    return command.run(args)


def add_dev_command(commands: Any) -> None:
    """Adds `deptmesh dev up | down | status` to the command's subparsers (what they print
    and their exit codes: deptmesh.services.dev.command)."""
    dev = commands.add_parser(
        "dev",
        help="a local mesh for trying things by hand: Consul with ACLs, the company's"
        " policy, every department",
        description="A local mesh that lives between commands, in $DEPTMESH_DEV_DIR"
        " (default $XDG_STATE_HOME/deptmesh/dev): `up` starts it, `status` shows it,"
        " `down` stops it.",
    )
    actions = dev.add_subparsers(dest="action", required=True)
    up = actions.add_parser(
        "up",
        help="start Consul (ACLs on, default deny), apply the company's policy, start every"
        " department; run again, it starts what died",
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds each step may take: the agent ready, the departments serving and"
        " passing Consul's health checks (default 60)",
    )
    down = actions.add_parser("down", help="stop everything `up` started, and nothing else")
    down.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds a process has to stop after SIGTERM before SIGKILL (default 20)",
    )
    down.add_argument(
        "--purge", action="store_true", help="also remove the logs and the departments' databases"
    )
    actions.add_parser(
        "status",
        help="the processes, their addresses and logs, and Consul's view; exit 0 up,"
        " 1 partly up, 3 not up",
    )
    dev.set_defaults(run=_run_dev)


def _run_docs(args: argparse.Namespace) -> int:
    from deptmesh.services import docs

    return docs.build(args)


def add_docs_command(commands: Any) -> None:
    """Adds `deptmesh docs build OUT/ [--policy FILE]` (deptmesh.services.docs)."""
    docs = commands.add_parser(
        "docs",
        help="the API reference: a static site from the contracts and the policy",
        description="Static pages that work from disk: every department's methods, their"
        " fields, status codes, cost, callers and examples; a changelog; search.",
    )
    actions = docs.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="write the site into OUT (created if missing)")
    build.add_argument("out", metavar="OUT", type=Path, help="the folder to write")
    build.add_argument(
        "--policy",
        type=Path,
        help="the policy that says who may call what (default: the company's)",
    )
    docs.set_defaults(run=_run_docs)


def _run_portal(args: argparse.Namespace) -> int:
    from deptmesh.services.portal import command

    return command.run(args)


def add_portal_command(commands: Any) -> None:
    """Adds `deptmesh portal` (its flags: deptmesh.services.portal.command)."""
    from deptmesh.services.portal.command import add_arguments

    portal = commands.add_parser(
        "portal",
        help="the developer portal: the API reference and live pages of the mesh (catalog,"
        " call graph, usage, traces, refusals, alerts), read-only, on localhost",
        description="Serves the developer portal until interrupted; its first line says where."
        " Given no Consul address, it reads the local mesh of `deptmesh dev up` as the"
        " platform.",
    )
    add_arguments(portal)
    portal.set_defaults(run=_run_portal)
