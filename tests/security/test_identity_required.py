"""A plaintext sidecar channel calling an mTLS service is told that the service requires
a deptmesh identity, instead of grpc's bare "Socket closed"."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import aio_connect, connect
from deptmesh.sidecar.channel.mtls import IdentityRequired
from deptmesh.sidecar.host import instance_of


def test_a_channel_without_identity_is_told_what_is_missing(finance):
    """connect("finance", cache) without identity= against an mTLS finance: UNAVAILABLE
    naming finance and identity=, grpc's own error kept as the cause; nothing reached
    the handler."""
    handler, address, _ = finance
    host, _, port = address.rpartition(":")
    cache = EndpointCache(StaticRegistry([instance_of("finance", host, int(port))]))
    try:
        with connect("finance", cache) as channel, pytest.raises(grpc.RpcError) as raised:
            finance_pb2_grpc.PaymentServiceStub(channel).Payout(
                finance_pb2.PayoutRequest(), timeout=5
            )
    finally:
        cache.close()
    error = raised.value
    assert isinstance(error, IdentityRequired)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details().startswith(
        "finance requires a deptmesh (mTLS) identity: it closed this plaintext connection"
        " while setting it up; connect with identity=..."
    )
    assert "Socket closed" in error.__cause__.details()
    assert handler.calls == 0


def test_an_aio_channel_without_identity_is_told_too(finance):
    """The same through aio_connect: the awaited call raises IdentityRequired."""
    handler, address, _ = finance
    host, _, port = address.rpartition(":")
    cache = EndpointCache(StaticRegistry([instance_of("finance", host, int(port))]))

    async def payout() -> None:
        async with aio_connect("finance", cache) as channel:
            await finance_pb2_grpc.PaymentServiceStub(channel).Payout(
                finance_pb2.PayoutRequest(), timeout=5
            )

    try:
        with pytest.raises(IdentityRequired, match=r"^finance requires a deptmesh"):
            asyncio.run(payout())
    finally:
        cache.close()
    assert handler.calls == 0


def test_a_plaintext_service_that_is_down_is_not_explained_as_mtls():
    """Nothing listening is a refused connection, not a missing identity."""
    cache = EndpointCache(StaticRegistry([instance_of("finance", "127.0.0.1", 1)]))
    try:
        with connect("finance", cache) as channel, pytest.raises(grpc.RpcError) as raised:
            finance_pb2_grpc.PaymentServiceStub(channel).Payout(
                finance_pb2.PayoutRequest(), timeout=2
            )
    finally:
        cache.close()
    assert not isinstance(raised.value, IdentityRequired)
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
