"""The usage ledger as a department: its store, its rate cards, its servicer on the server."""

from __future__ import annotations

import argparse
from pathlib import Path

from deptmesh.metering.v1 import metering_pb2, metering_pb2_grpc
from deptmesh.services.metering.rate_cards import rate_card_source
from deptmesh.services.metering.servicer import UsageLedgerServicer
from deptmesh.services.metering.store import UsageStore
from deptmesh.sidecar import Closer, Department, HostContext


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate-cards-file",
        type=Path,
        help="price with the rate cards in this JSON file (re-read when it changes) instead"
        " of the ones `deptmesh policy apply` writes to Consul",
    )


def build(host: HostContext) -> Closer:
    try:
        rate_cards, stop_following = rate_card_source(host.registry, host.flags.rate_cards_file)
    except OSError as error:
        raise ValueError(f"--rate-cards-file: {error}") from error
    store = UsageStore(host.db)
    host.server.add_service(
        metering_pb2.DESCRIPTOR.services_by_name["UsageLedgerService"],
        metering_pb2_grpc.add_UsageLedgerServiceServicer_to_server,
        UsageLedgerServicer(store, rate_cards),
    )

    def close() -> None:
        stop_following()
        store.close()

    return close


METERING = Department(
    name="metering",
    contract_version="v1",
    build=build,
    add_flags=add_flags,
    description="The usage ledger: what each department consumed of whom, and what it owes"
    " (deptmesh.metering.v1).",
)
