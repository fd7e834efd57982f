"""Serving the portal with uvicorn on a socket bound before it starts: with port 0 the
address is known, and printed, before the first request can arrive (the kernel
queues connections until uvicorn accepts them)."""

from __future__ import annotations

import socket
import sys

import uvicorn
from starlette.applications import Starlette

__all__ = ["serve"]


def serve(app: Starlette, host: str, port: int) -> None:
    """Serves `app` on host:port until SIGINT or SIGTERM, once it has printed
    `portal serving on HOST:PORT` as its first line on standard output."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    bound_host, bound_port = listener.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    sys.stdout.write(f"portal serving on {shown}:{bound_port}\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
