"""`deptmesh certificate --as IDENTITY DIR`: an identity's Connect leaf as PEM files, for
third-party tools such as grpcurl.

Every deptmesh server requires a client certificate from the mesh's CA, its
reflection service included. This writes IDENTITY's current leaf (cert.pem,
key.pem, readable by its owner only) and the CA roots (ca.pem) into DIR, with
the token `deptmesh call` would use, and prints the grpcurl flags that use them.
A leaf is short-lived (Consul renews it for running services): write it again
when it has expired.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from deptmesh.sidecar.cli.acting_as import (
    CommandRefused,
    add_consul_arguments,
    bad_invocation,
    consul_access,
    leaf_of,
)

__all__ = ["add_certificate_command"]


def add_certificate_command(commands: Any) -> None:
    """Adds `certificate` to the `deptmesh` command's subparsers."""
    certificate = commands.add_parser(
        "certificate",
        help="write an identity's Connect leaf and the CA roots as PEM files (for grpcurl)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    certificate.set_defaults(run=_run)
    certificate.add_argument(
        "--as", dest="identity", required=True, metavar="IDENTITY", help="whose leaf to write"
    )
    certificate.add_argument("directory", metavar="DIR", type=Path, help="where to write them")
    add_consul_arguments(certificate)


def _write(path: Path, content: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(descriptor, mode)  # it may have existed with a wider mode
        os.write(descriptor, content)
    finally:
        os.close(descriptor)


def _run(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    access = consul_access(args.identity, args.consul_address, args.consul_token_file)
    try:
        with ExitStack() as opened:
            _, leaf = leaf_of(args.identity, access, opened)
            identity = leaf()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _write(directory / "cert.pem", identity.certificate_pem, 0o644)
            _write(directory / "key.pem", identity.private_key_pem, 0o600)
            _write(directory / "ca.pem", identity.trust_bundle_pem, 0o644)
        except OSError as error:
            raise bad_invocation(f"cannot write to {directory}: {error.strerror}") from None
    except CommandRefused as refusal:
        print(f"deptmesh certificate: {refusal}", file=sys.stderr)
        return refusal.status
    print(f"wrote {args.identity}'s certificate and key, and the CA roots, to {directory}")
    print(
        f"grpcurl -insecure -cert {directory / 'cert.pem'} -key {directory / 'key.pem'}"
        " HOST:PORT list"
    )
    return 0
