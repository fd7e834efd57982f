"""The portal's pages: each reads its sources, and says so in a notice when one is absent.

Every handler is a plain function (Starlette runs it on its thread pool): the
sources are blocking clients (Consul over HTTP, the ledger over gRPC, SQLite).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services.portal.call_graph import call_graph
from deptmesh.services.portal.catalog import CatalogEntry, read_catalog
from deptmesh.services.portal.charts import (
    Bucket,
    HeadroomBar,
    draw_headroom,
    draw_usage_over_time,
)
from deptmesh.services.portal.graph_drawing import draw_call_graph, edge_label, error_class
from deptmesh.services.portal.ledger import LedgerReader
from deptmesh.services.portal.refusals import refusals
from deptmesh.services.portal.sources import PortalSources
from deptmesh.services.portal.traces import TraceWindow
from deptmesh.services.portal.unavailable import SourceUnavailable
from deptmesh.services.portal.waterfall import draw_waterfall, in_call_order
from deptmesh.services.portal.windows import WINDOWS, Window, window_named
from deptmesh.sidecar.cli.statement_view import money_text
from deptmesh.sidecar.cli.usage import RECENT_SECONDS, Summaries
from deptmesh.sidecar.monitoring import AlertmanagerUnavailable, firing_alerts

__all__ = ["Pages"]

_RECENT_TRACES = 50
_RECENT_REFUSALS = 100


class _Notices:
    """What a page could not show, and why: one sentence per absent source."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextmanager
    def source(self) -> Iterator[None]:
        try:
            yield
        except SourceUnavailable as absent:
            self.messages.append(str(absent))


def _minute_ceiling(moment: datetime) -> datetime:
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


def _clock(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


class Pages:
    """The handlers, over the sources the portal was started with."""

    def __init__(
        self, sources: PortalSources, templates: Jinja2Templates, ledger: LedgerReader
    ) -> None:
        self._sources = sources
        self._templates = templates
        self._ledger = ledger
        self._registry = ConsulRegistry(sources.consul_address, token_file=sources.token_file)
        templates.env.filters["clock"] = _clock
        templates.env.globals["windows"] = WINDOWS

    def _render(
        self, request: Request, name: str, notices: _Notices, status: int = 200, **context: Any
    ) -> Response:
        return self._templates.TemplateResponse(
            request, name, {"notices": notices.messages, **context}, status_code=status
        )

    def _window(self, request: Request) -> Window:
        try:
            return window_named(request.query_params.get("window"))
        except ValueError:
            return window_named(None)

    def _catalog(self, notices: _Notices) -> list[CatalogEntry]:
        entries: list[CatalogEntry] = []
        with notices.source():
            entries = read_catalog(self._registry)
        return entries

    @contextmanager
    def _traces(self) -> Iterator[TraceWindow]:
        store = TraceWindow(self._sources.trace_store)
        try:
            yield store
        finally:
            store.close()

    def catalog(self, request: Request) -> Response:
        notices = _Notices()
        entries = self._catalog(notices)
        return self._render(request, "catalog.html", notices, entries=entries)

    def graph(self, request: Request) -> Response:
        notices = _Notices()
        window = self._window(request)
        departments = [entry.department for entry in self._catalog(notices)]
        now = datetime.now(UTC)
        usage: Summaries = {}
        with notices.source():
            usage = self._ledger.usage(departments, now - window.length, now)
        spans = []
        with notices.source(), self._traces() as traces:
            spans = traces.server_spans(int((now - window.length).timestamp() * 1e9))
        graph = call_graph(usage, spans, window.seconds, departments)
        return self._render(
            request,
            "graph.html",
            notices,
            window=window,
            graph=graph,
            drawing=draw_call_graph(graph),
            edge_label=edge_label,
            error_class=error_class,
        )

    def usage(self, request: Request) -> Response:
        notices = _Notices()
        window = self._window(request)
        departments = [entry.department for entry in self._catalog(notices)]
        end = _minute_ceiling(datetime.now(UTC))
        start = end - window.length
        callers: list[str] = []
        with notices.source():
            usage = self._ledger.usage(departments, start, end)
            callers = sorted({caller for caller, _, _ in usage})
        caller = request.query_params.get("caller") or (callers[0] if callers else "")
        context: dict[str, Any] = {"window": window, "callers": callers, "caller": caller}
        if caller:
            with notices.source():
                context["over_time"] = self._over_time(caller, start, window)
            with notices.source():
                context["headroom"] = self._headroom(caller)
            with notices.source():
                context["statement"] = self._ledger.statement(caller, end.strftime("%Y-%m"))
                context["money"] = money_text
        return self._render(request, "usage.html", notices, **context)

    def _over_time(self, caller: str, start: datetime, window: Window) -> Any:
        series = self._ledger.series(caller, start, window.step, window.buckets)
        buckets = []
        for index, usage in enumerate(series):
            calls = failed = 0
            for (who, _, _), summary in usage.items():
                if who == caller:
                    calls += summary.calls
                    failed += summary.errors + summary.throttled + summary.denied
            label = (start + window.step * index).strftime("%H:%M")
            buckets.append(Bucket(label, calls - failed, failed))
        return draw_usage_over_time(f"{caller}'s calls per {window.step}", buckets)

    def _headroom(self, caller: str) -> Any:
        policy = self._ledger.quota_policy()
        if policy is None:
            raise SourceUnavailable("no quota policy is in force: nobody is limited")
        now = datetime.now(UTC)
        recent = self._ledger.usage([caller], now - timedelta(seconds=RECENT_SECONDS), now)
        units: dict[tuple[str, str], int] = defaultdict(int)
        tiers = {}
        for (who, callee, method), summary in recent.items():
            if who != caller:
                continue
            limits = policy.limits(callee, caller, method)
            key = (callee, limits.bucket_method or "every method")
            units[key] += summary.cost_units
            tiers[key] = limits.tier
        bars = [
            HeadroomBar(
                f"{callee}: {bucket}", tiers[key].name, tiers[key].rate, used / RECENT_SECONDS
            )
            for key, used in sorted(units.items())
            for callee, bucket in [key]
        ]
        return draw_headroom(f"{caller}'s quota use over the last 5 minutes", bars)

    def traces(self, request: Request) -> Response:
        notices = _Notices()
        window = self._window(request)
        since = int((time.time() - window.seconds) * 1e9)
        found = []
        with notices.source(), self._traces() as traces:
            found = traces.recent_traces(since, _RECENT_TRACES)
        return self._render(request, "traces.html", notices, window=window, traces=found)

    def trace(self, request: Request) -> Response:
        notices = _Notices()
        trace_id = str(request.path_params["trace_id"])
        spans = []
        with notices.source(), self._traces() as traces:
            spans = traces.spans_of(trace_id)
        context: dict[str, Any] = {"trace_id": trace_id, "spans": in_call_order(spans)}
        if spans:
            context["drawing"] = draw_waterfall(spans)
        status = 200 if spans or notices.messages else 404
        return self._render(request, "trace.html", notices, status, **context)

    def refusals(self, request: Request) -> Response:
        notices = _Notices()
        window = self._window(request)
        since = int((time.time() - window.seconds) * 1e9)
        found = []
        with notices.source(), self._traces() as traces:
            found = refusals(traces.server_spans(since), _RECENT_REFUSALS)
        return self._render(request, "refusals.html", notices, window=window, refusals=found)

    def alerts(self, request: Request) -> Response:
        notices = _Notices()
        url = self._sources.alertmanager_url
        alerts = []
        if url is None:
            notices.messages.append(
                "no monitoring: the portal knows no Alertmanager (`deptmesh dev up` runs one;"
                " or start the portal with --alertmanager URL)"
            )
        else:
            try:
                alerts = firing_alerts(url)
            except AlertmanagerUnavailable as error:
                notices.messages.append(str(error))
        return self._render(request, "alerts.html", notices, alerts=alerts, alertmanager=url)

    def routes(self) -> list[tuple[str, Callable[[Request], Response]]]:
        return [
            ("/", self.catalog),
            ("/graph", self.graph),
            ("/usage", self.usage),
            ("/traces", self.traces),
            ("/traces/{trace_id}", self.trace),
            ("/refusals", self.refusals),
            ("/alerts", self.alerts),
        ]
