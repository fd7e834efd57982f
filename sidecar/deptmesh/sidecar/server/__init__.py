"""gRPC servers with the deptmesh chain, health and reflection built in: a thread-pool
Server and its asyncio twin, AioServer, sharing one chain (stages.py) and one way to
bind (_binding.py)."""

from deptmesh.sidecar.server._aio import AioServer
from deptmesh.sidecar.server._binding import MAX_MESSAGE_BYTES, MAX_METADATA_BYTES
from deptmesh.sidecar.server._sync import Server

__all__ = ["MAX_MESSAGE_BYTES", "MAX_METADATA_BYTES", "AioServer", "Server"]
