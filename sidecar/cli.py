"""The `deptmesh` command: platform tools, one subcommand each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version


def _demo(_: argparse.Namespace) -> int:
    from services import demo  # imported here: only this command needs the services

    return demo.main()


def _version(_: argparse.Namespace) -> int:
    print(f"deptmesh {version('deptmesh')}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deptmesh", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the installed version").set_defaults(run=_version)
    commands.add_parser(
        "demo", help="start the three departments and drive one claim to PAID"
    ).set_defaults(run=_demo)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
