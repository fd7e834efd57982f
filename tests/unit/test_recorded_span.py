"""The sidecar's own spans reach the SDK's span processors as the SDK's would."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanKind, StatusCode

from deptmesh.sidecar.tracing import Tracing


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exported: InMemorySpanExporter) -> Tracing:
    return Tracing.start("hr", exporter="none", processors=[SimpleSpanProcessor(exported)])


def test_a_recorded_span_is_exported_with_what_was_recorded(tracing, exported) -> None:
    """A recorded span reaches the processors with its name, kind, attributes, events,
    status, resource and times."""
    span = tracing.record("Svc/Method", INVALID_SPAN_CONTEXT, SpanKind.SERVER, {"a": 1})
    span.set_attribute("b", "two")
    span.add_event("denied", {"reason": "no intention"})
    span.set_status(StatusCode.ERROR, "PERMISSION_DENIED")
    span.end()

    [finished] = exported.get_finished_spans()
    assert finished.name == "Svc/Method"
    assert finished.kind is SpanKind.SERVER
    assert dict(finished.attributes or {}) == {"a": 1, "b": "two"}
    assert [(event.name, dict(event.attributes or {})) for event in finished.events] == [
        ("denied", {"reason": "no intention"})
    ]
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "PERMISSION_DENIED"
    assert finished.resource.attributes["service.name"] == "hr"
    assert finished.parent is None
    assert finished.context is not None
    assert finished.context.trace_flags.sampled
    assert finished.start_time is not None
    assert finished.end_time is not None
    assert finished.start_time <= finished.end_time


def test_a_child_is_in_its_parents_trace(tracing, exported) -> None:
    """A span recorded under another is in its trace, with it as parent."""
    parent = tracing.record("parent", INVALID_SPAN_CONTEXT, SpanKind.SERVER, {})
    child = tracing.record("child", parent.get_span_context(), SpanKind.CLIENT, {})
    child.end()
    parent.end()

    finished_child, _ = exported.get_finished_spans()
    assert finished_child.parent == parent.get_span_context()
    assert finished_child.context is not None
    assert finished_child.context.trace_id == parent.get_span_context().trace_id


def test_an_ended_span_changes_no_more_and_is_exported_once(tracing, exported) -> None:
    """Changes and a second end after the end are ignored: the span is exported once."""
    span = tracing.record("call", INVALID_SPAN_CONTEXT, SpanKind.SERVER, {"a": 1})
    span.end()
    span.set_attribute("a", 2)
    span.add_event("late")
    span.update_name("renamed")
    span.end()

    [finished] = exported.get_finished_spans()
    assert not span.is_recording()
    assert (finished.name, dict(finished.attributes or {}), finished.events) == (
        "call",
        {"a": 1},
        (),
    )


def test_an_exception_leaving_a_span_of_our_own_is_recorded_on_it(tracing, exported) -> None:
    """An exception leaving `Tracing.span` is an exception event and an ERROR status on the span."""
    with pytest.raises(LookupError), tracing.span("lookup"):
        raise LookupError("no such employee")

    [finished] = exported.get_finished_spans()
    [event] = finished.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "LookupError"
    assert event.attributes["exception.message"] == "no such employee"
    assert finished.status.status_code is StatusCode.ERROR
    assert trace.get_current_span() is trace.INVALID_SPAN  # the span is no longer current


def test_a_span_shows_its_attributes_as_the_sdks_spans_do(tracing, exported) -> None:
    """`attributes` shows what was set so far, as the SDK's spans do (tags.py reads it)."""
    span = tracing.record("call", INVALID_SPAN_CONTEXT, SpanKind.SERVER, {"a": 1})
    span.set_attribute("b", "two")
    assert dict(span.attributes) == {"a": 1, "b": "two"}
    span.end()
