"""What the host's flags and the `deptmesh` command's share: HOST:PORT values, one-line errors.

    parser = OneLineParser(prog="deptmesh")
    parser.add_argument("--consul-address", type=host_port)

A value that is not HOST:PORT is refused while the command line is parsed, in
one line naming the flag, instead of a ValueError from int() once the command
is already running; `--help` still prints the usage.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

__all__ = ["OneLineParser", "host_port"]

# A host name, an IPv4 address, or an IPv6 address in brackets.
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


class OneLineParser(argparse.ArgumentParser):
    """A bad flag is one line naming it (exit status 2), not the usage of every flag.

    Subcommands' parsers are of the same class, so they say it in one line too.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (--help lists the flags)\n")


def host_port(value: str) -> str:
    """`value` as HOST:PORT (an `http://` prefix, as $CONSUL_HTTP_ADDR may carry, dropped).

    Raises argparse.ArgumentTypeError saying what is wrong, so that argparse
    names the flag.
    """
    address = value.strip().removeprefix("http://")
    host, colon, port = address.rpartition(":")
    example = "for example 127.0.0.1:8500"
    if not colon or not _HOST.fullmatch(host):
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT ({example})")
    if not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r}: the port must be a number from 1 to 65535 ({example})"
        )
    return f"{host}:{int(port)}"
