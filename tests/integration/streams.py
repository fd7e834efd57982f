"""A test service with a method of every shape, for the channel tests: `Streams`.

Its contract is built here, at import, into the default descriptor pool (no
generated code for tests), with the methods declared idempotent so that a test
can show streams are still not retried (Send, the unary method that is not
declared idempotent, is there for the other case). Requests and responses are
google.protobuf.StringValue. The handler records, per call, the time its
caller left it, the trace headers it carried and the certificate it presented.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2

from deptmesh.sidecar import Server
from tests.aio_servers import AioServerThread

SERVICE = "deptmesh.test.v1.Streams"
ECHO, SEND, WATCH, COLLECT, CHAT = (
    f"/{SERVICE}/{name}" for name in ("Echo", "Send", "Watch", "Collect", "Chat")
)
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
Text = wrappers_pb2.StringValue


def _declare() -> Any:
    """The Streams service in the default pool, declared once per process."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(SERVICE)
    except KeyError:
        pass
    contract = descriptor_pb2.FileDescriptorProto(
        name="tests/deptmesh/test/v1/streams.proto",
        package="deptmesh.test.v1",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    service = contract.service.add(name="Streams")
    idempotent = descriptor_pb2.MethodOptions.IDEMPOTENT
    unknown = descriptor_pb2.MethodOptions.IDEMPOTENCY_UNKNOWN
    for name, client_streaming, server_streaming, level in (
        ("Echo", False, False, idempotent),
        ("Send", False, False, unknown),
        ("Watch", False, True, idempotent),
        ("Collect", True, False, idempotent),
        ("Chat", True, True, idempotent),
    ):
        method = service.method.add(
            name=name,
            input_type=".google.protobuf.StringValue",
            output_type=".google.protobuf.StringValue",
            client_streaming=client_streaming,
            server_streaming=server_streaming,
        )
        method.options.idempotency_level = level
    pool.AddSerializedFile(contract.SerializeToString())
    return pool.FindServiceByName(SERVICE)


DESCRIPTOR = _declare()


class Streams:
    """Answers every shape: Echo repeats the value, Watch sends it three times, Collect
    joins the values it got, Chat echoes each one. With `fail_with`, every call is
    aborted with that code before any message; with `hold` (sync server only),
    every call waits for that event before it answers."""

    def __init__(
        self, fail_with: grpc.StatusCode | None = None, hold: threading.Event | None = None
    ) -> None:
        self.fail_with = fail_with
        self.hold = hold
        self.remaining: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.certificates: list[bytes | None] = []
        self._lock = threading.Lock()

    @property
    def calls(self) -> int:
        return len(self.remaining)

    def _seen(self, context: Any) -> None:
        headers = {k: v for k, v in context.invocation_metadata() if k in TRACE_HEADERS}
        certificate = context.auth_context().get("x509_pem_cert", [None])[0]
        with self._lock:
            self.remaining.append(context.time_remaining())
            self.headers.append(headers)
            self.certificates.append(certificate)

    def _check(self, context: Any) -> None:
        self._seen(context)
        if self.hold is not None:
            self.hold.wait(timeout=30)
        if self.fail_with is not None:
            context.abort(self.fail_with, "overloaded")

    def echo(self, request: Text, context: Any) -> Text:
        self._check(context)
        return Text(value=request.value)

    def watch(self, request: Text, context: Any) -> Iterator[Text]:
        self._check(context)
        for _ in range(3):
            yield Text(value=request.value)

    def collect(self, requests: Iterator[Text], context: Any) -> Text:
        self._check(context)
        return Text(value="".join(request.value for request in requests))

    def chat(self, requests: Iterator[Text], context: Any) -> Iterator[Text]:
        self._check(context)
        for request in requests:
            yield Text(value=request.value)


class AioStreams(Streams):
    """The same for a grpc.aio server."""

    async def _acheck(self, context: Any) -> None:
        self._seen(context)
        if self.fail_with is not None:
            await context.abort(self.fail_with, "overloaded")

    async def echo(self, request: Text, context: Any) -> Text:  # type: ignore[override]
        await self._acheck(context)
        return Text(value=request.value)

    async def watch(self, request: Text, context: Any) -> AsyncIterator[Text]:  # type: ignore[override]
        await self._acheck(context)
        for _ in range(3):
            yield Text(value=request.value)

    async def collect(self, requests: AsyncIterator[Text], context: Any) -> Text:  # type: ignore[override]
        await self._acheck(context)
        return Text(value="".join([request.value async for request in requests]))

    async def chat(self, requests: AsyncIterator[Text], context: Any) -> AsyncIterator[Text]:  # type: ignore[override]
        await self._acheck(context)
        async for request in requests:
            yield Text(value=request.value)


def _register(servicer: Streams, server: Any) -> None:
    parse, write = Text.FromString, Text.SerializeToString
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(servicer.echo, parse, write),
        "Send": grpc.unary_unary_rpc_method_handler(servicer.echo, parse, write),
        "Watch": grpc.unary_stream_rpc_method_handler(servicer.watch, parse, write),
        "Collect": grpc.stream_unary_rpc_method_handler(servicer.collect, parse, write),
        "Chat": grpc.stream_stream_rpc_method_handler(servicer.chat, parse, write),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def serve_streams(servicer: Streams, **options: Any) -> tuple[Any, int]:
    """Starts `servicer` behind the sidecar chain on 127.0.0.1:0, on a grpc.aio server
    for an AioStreams; the server (stop it with stop(0)) and its port."""
    server = AioServerThread(**options) if isinstance(servicer, AioStreams) else Server(**options)
    server.add_service(DESCRIPTOR, _register, servicer)
    return server, server.start("127.0.0.1:0")


class StreamsStub:
    """What generated code would be for Streams: one multicallable per method."""

    def __init__(self, channel: Any) -> None:
        write, parse = Text.SerializeToString, Text.FromString
        self.Echo = channel.unary_unary(ECHO, write, parse, _registered_method=True)
        self.Send = channel.unary_unary(SEND, write, parse, _registered_method=True)
        self.Watch = channel.unary_stream(WATCH, write, parse, _registered_method=True)
        self.Collect = channel.stream_unary(COLLECT, write, parse, _registered_method=True)
        self.Chat = channel.stream_stream(CHAT, write, parse, _registered_method=True)


def texts(*values: str) -> Iterator[Text]:
    return (Text(value=value) for value in values)
