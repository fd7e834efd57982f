"""deptmesh.sidecar.tracing's face: what a service uses, not the plumbing behind it."""

from __future__ import annotations

from deptmesh.sidecar import tracing


class TestTracingFace:
    def test_it_exports_what_services_use(self):
        """__all__ is the tracer, its exporter choice and tag_current_call, sorted."""
        assert tracing.__all__ == ["Exporter", "Tracing", "tag_current_call"]
        assert all(hasattr(tracing, name) for name in tracing.__all__)
