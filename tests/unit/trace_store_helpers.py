"""What the trace store's tests share: tracers writing into a store, raw SQL on it."""

from __future__ import annotations

import sqlite3

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

__all__ = ["rows", "tracer_of"]


def tracer_of(provider_exporter: SpanExporter, service: str, providers: list[TracerProvider]):
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(provider_exporter))
    providers.append(provider)
    return provider.get_tracer("tests")


def rows(path, sql, *parameters):
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()
