"""Every call shape through a service channel, sync and asyncio, over mTLS: each call
carries a deadline and has a client span whose context reaches the server, and the
span ends when the call ends."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from deptmesh.registry.cache import EndpointCache
from deptmesh.registry.static import StaticRegistry
from deptmesh.sidecar import aio_connect, connect
from deptmesh.sidecar.channel import dial
from deptmesh.sidecar.host import instance_of
from deptmesh.sidecar.identity.sources import dev_ca_identity
from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing import attributes as attr
from tests.integration.servers import wait_for
from tests.integration.streams import ECHO, Streams, StreamsStub, Text, serve_streams, texts
from tests.integration.test_deadlines import SLACK
from tests.security.mtls import CA

DEFAULT_TIMEOUT = 7.0


async def requests(*values):
    for value in values:
        yield Text(value=value)


# Each shape and way of calling: (the call, the values it must answer).
SYNC_CALLS = {
    "unary": (lambda stub, **kw: [stub.Echo(Text(value="a"), **kw)], ["a"]),
    "unary with_call": (lambda stub, **kw: [stub.Echo.with_call(Text(value="a"), **kw)[0]], ["a"]),
    "unary future": (lambda stub, **kw: [stub.Echo.future(Text(value="a"), **kw).result()], ["a"]),
    "unary_stream": (lambda stub, **kw: list(stub.Watch(Text(value="a"), **kw)), ["a"] * 3),
    "stream_unary": (lambda stub, **kw: [stub.Collect(texts("a", "b"), **kw)], ["ab"]),
    "stream_unary with_call": (
        lambda stub, **kw: [stub.Collect.with_call(texts("a", "b"), **kw)[0]],
        ["ab"],
    ),
    "stream_unary future": (
        lambda stub, **kw: [stub.Collect.future(texts("a", "b"), **kw).result()],
        ["ab"],
    ),
    "stream_stream": (lambda stub, **kw: list(stub.Chat(texts("a", "b"), **kw)), ["a", "b"]),
}


async def _aio_unary(stub, **kw):
    return [await stub.Echo(Text(value="a"), **kw)]


async def _aio_unary_stream(stub, **kw):
    return [reply async for reply in stub.Watch(Text(value="a"), **kw)]


async def _aio_stream_unary(stub, **kw):
    return [await stub.Collect(texts("a", "b"), **kw)]


async def _aio_stream_stream(stub, **kw):
    return [reply async for reply in stub.Chat(requests("a", "b"), **kw)]


AIO_CALLS = {
    "unary": (_aio_unary, ["a"]),
    "unary_stream": (_aio_unary_stream, ["a"] * 3),
    "stream_unary": (_aio_stream_unary, ["ab"]),
    "stream_stream": (_aio_stream_stream, ["a", "b"]),
}


@pytest.fixture
def spans():
    return InMemorySpanExporter()


@pytest.fixture
def tracing(spans):
    tracing = Tracing.start(
        "reimbursement",
        exporter="none",
        processors=[SimpleSpanProcessor(spans)],
        spiffe_id=CA.spiffe_id("reimbursement").uri,
    )
    yield tracing
    tracing.shutdown()


@pytest.fixture
def streams():
    """A Streams service over mTLS, registered as `streams`: (its handler, cache, port)."""
    handler = Streams()
    server, port = serve_streams(handler, identity_source=dev_ca_identity(CA, "streams"))
    cache = EndpointCache(StaticRegistry([instance_of("streams", "127.0.0.1", port)]))
    yield handler, cache, port
    cache.close()
    server.stop(0)


@pytest.fixture
def channel(streams, tracing):
    _, cache, _ = streams
    channel = connect(
        "streams",
        cache,
        identity=dev_ca_identity(CA, "reimbursement"),
        tracing=tracing,
        default_timeout=DEFAULT_TIMEOUT,
    )
    yield channel
    channel.close()


def run_aio(streams, tracing, scenario):
    """Runs `scenario(stub)` on a fresh event loop with an aio channel to `streams`."""
    _, cache, _ = streams

    async def main():
        async with aio_connect(
            "streams",
            cache,
            identity=dev_ca_identity(CA, "reimbursement"),
            tracing=tracing,
            default_timeout=DEFAULT_TIMEOUT,
        ) as channel:
            return await scenario(StreamsStub(channel))

    return asyncio.run(main())


def client_spans(spans):
    return [span for span in spans.get_finished_spans() if span.kind is SpanKind.CLIENT]


def the_client_span(spans):
    """The one client span, once it has ended (streams and futures end it on grpc's side)."""
    [span] = wait_for(lambda: client_spans(spans), timeout=5, what="the client span ended")
    return span


def assert_span_reached_the_server(span, handler, port, path):
    assert span.name == path.lstrip("/")
    attributes = span.attributes
    assert attributes["rpc.system"] == "grpc"
    assert f"/{attributes['rpc.service']}/{attributes['rpc.method']}" == path
    assert (attributes["server.address"], attributes[attr.CALLEE_SERVICE]) == ("streams",) * 2
    assert attributes[attr.CALLER_SPIFFE_ID] == CA.spiffe_id("reimbursement").uri
    assert attributes["network.peer.port"] == port
    assert attributes["rpc.grpc.status_code"] == 0
    assert 0 < attributes[attr.DEADLINE_REMAINING] <= DEFAULT_TIMEOUT
    context = span.context
    [headers] = handler.headers
    assert headers["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


class TestSyncShapes:
    @pytest.mark.parametrize("shape", SYNC_CALLS)
    def test_a_call_without_timeout_carries_the_default_deadline(self, shape, streams, channel):
        """Whatever its shape, a call with no timeout reaches the server with the channel's
        default deadline."""
        handler, _, _ = streams
        call, expected = SYNC_CALLS[shape]
        assert [reply.value for reply in call(StreamsStub(channel))] == expected
        [remaining] = handler.remaining
        assert 0 < remaining <= DEFAULT_TIMEOUT + SLACK

    @pytest.mark.parametrize("shape", SYNC_CALLS)
    def test_the_callers_timeout_is_kept(self, shape, streams, channel):
        """A shorter timeout of the caller's own is the deadline the server sees."""
        handler, _, _ = streams
        call, _ = SYNC_CALLS[shape]
        call(StreamsStub(channel), timeout=2.0)
        [remaining] = handler.remaining
        assert 0 < remaining <= 2.0 + SLACK

    @pytest.mark.parametrize("shape", SYNC_CALLS)
    def test_a_call_has_a_client_span_whose_context_reaches_the_server(
        self, shape, streams, channel, spans
    ):
        """Every shape has one client span with the RPC attributes, the callee and the
        deadline, ended OK, and the server receives its traceparent."""
        handler, _, port = streams
        call, _ = SYNC_CALLS[shape]
        call(StreamsStub(channel))
        path = (
            "/deptmesh.test.v1.Streams/"
            + {
                "unary": "Echo",
                "unary_stream": "Watch",
                "stream_unary": "Collect",
                "stream_stream": "Chat",
            }[shape.split()[0]]
        )
        assert_span_reached_the_server(the_client_span(spans), handler, port, path)

    def test_dial_gives_a_stream_a_deadline(self):
        """A channel from dial(address) runs the same chain: a stream gets its default deadline."""
        handler = Streams()
        server, port = serve_streams(handler)
        try:
            with dial(f"127.0.0.1:{port}", default_timeout=3.0) as channel:
                list(StreamsStub(channel).Chat(texts("a")))
        finally:
            server.stop(0)
        [remaining] = handler.remaining
        assert 0 < remaining <= 3.0 + SLACK


class TestSpanEnds:
    def test_a_future_span_ends_when_the_future_completes(self, streams, channel, spans):
        """The span of a future is still open while the call runs and ends when it completes."""
        handler, _, _ = streams
        handler.hold = threading.Event()
        future = StreamsStub(channel).Echo.future(Text(value="a"))
        wait_for(lambda: handler.calls == 1, timeout=5, what="the call reached the server")
        assert client_spans(spans) == []
        handler.hold.set()
        assert future.result().value == "a"
        assert the_client_span(spans).attributes["rpc.grpc.status_code"] == 0

    def test_a_response_stream_span_ends_when_it_is_read_to_the_end(self, channel, spans):
        """Reading part of a response stream leaves its span open; reading the rest ends it."""
        replies = StreamsStub(channel).Watch(Text(value="a"))
        next(replies)
        assert client_spans(spans) == []
        assert len(list(replies)) == 2
        assert the_client_span(spans).attributes["rpc.grpc.status_code"] == 0

    def test_a_cancelled_stream_ends_its_span_as_cancelled(self, channel, spans):
        """Cancelling a response stream ends its span with CANCELLED."""
        replies = StreamsStub(channel).Chat(iter([Text(value="a")] * 100))
        next(replies)
        replies.cancel()
        span = the_client_span(spans)
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
        assert span.status.status_code is StatusCode.ERROR

    def test_a_failed_stream_ends_its_span_with_its_code(self, streams, channel, spans):
        """A stream the server fails ends its span with the server's code, as an error."""
        handler, _, _ = streams
        handler.fail_with = grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as caught:
            list(StreamsStub(channel).Watch(Text(value="a")))
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        span = the_client_span(spans)
        code = grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert span.attributes["rpc.grpc.status_code"] == code
        assert span.status.status_code is StatusCode.ERROR


class TestAioShapes:
    @pytest.mark.parametrize("shape", AIO_CALLS)
    def test_every_shape_answers(self, shape, streams, tracing):
        """The asyncio channel streams in every shape: the replies are the service's."""
        call, expected = AIO_CALLS[shape]
        assert [reply.value for reply in run_aio(streams, tracing, call)] == expected

    @pytest.mark.parametrize("shape", AIO_CALLS)
    def test_a_call_without_timeout_carries_the_default_deadline(self, shape, streams, tracing):
        """Whatever its shape, an asyncio call with no timeout has the default deadline."""
        handler, _, _ = streams
        run_aio(streams, tracing, AIO_CALLS[shape][0])
        [remaining] = handler.remaining
        assert 0 < remaining <= DEFAULT_TIMEOUT + SLACK

    @pytest.mark.parametrize("shape", AIO_CALLS)
    def test_the_callers_timeout_is_kept(self, shape, streams, tracing):
        """A shorter timeout of the caller's own is the deadline the server sees."""
        handler, _, _ = streams
        call, _ = AIO_CALLS[shape]
        run_aio(streams, tracing, lambda stub: call(stub, timeout=2.0))
        [remaining] = handler.remaining
        assert 0 < remaining <= 2.0 + SLACK

    @pytest.mark.parametrize("shape", AIO_CALLS)
    def test_a_call_has_a_client_span_whose_context_reaches_the_server(
        self, shape, streams, tracing, spans
    ):
        """Every asyncio shape has one client span, ended by the time the channel is
        closed, and the server receives its traceparent."""
        handler, _, port = streams
        run_aio(streams, tracing, AIO_CALLS[shape][0])
        [span] = client_spans(spans)
        path = (
            "/deptmesh.test.v1.Streams/"
            + {
                "unary": "Echo",
                "unary_stream": "Watch",
                "stream_unary": "Collect",
                "stream_stream": "Chat",
            }[shape]
        )
        assert_span_reached_the_server(span, handler, port, path)

    def test_a_stream_can_be_written_and_read_as_grpc_aio_allows(self, streams, tracing):
        """The call object of a stream is grpc.aio's own: write, done_writing and read work."""

        async def scenario(stub):
            call = stub.Chat()
            replies = []
            for value in ("x", "y"):
                await call.write(Text(value=value))
                replies.append((await call.read()).value)
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
            return replies, await call.code()

        assert run_aio(streams, tracing, scenario) == (["x", "y"], grpc.StatusCode.OK)

    def test_a_cancelled_unary_call_ends_its_span_as_cancelled(self, streams, tracing, spans):
        """Cancelling an awaited unary call cancels it and ends its span with CANCELLED."""
        handler, _, _ = streams
        handler.hold = threading.Event()

        async def scenario(stub):
            call = stub.Echo(Text(value="a"))
            await asyncio.to_thread(
                wait_for, lambda: handler.calls == 1, 5, "the call reached the server"
            )
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            return await call.code()

        try:
            assert run_aio(streams, tracing, scenario) is grpc.StatusCode.CANCELLED
        finally:
            handler.hold.set()
        [span] = client_spans(spans)
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
        assert span.name == ECHO.lstrip("/")
