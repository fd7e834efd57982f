"""`deptmesh portal`: the developer portal, a small read-only web application.

It serves the API reference (deptmesh.sidecar.reference, built when it starts)
and live pages from the mesh: the service catalog (Consul), the department call
graph with call rate, error ratio and p95 per edge (the usage ledger's counters,
the trace store's server spans), per-caller usage over time with quota headroom
and the month-to-date statement (the ledger, the quota policy), recent traces and
one trace as a waterfall, recent refusals with their reasons (the trace store),
and what is alerting (Alertmanager). Every page is rendered on the server, charts
and the graph as SVG; each says so when one of its sources is absent.

sources.py decides where each source is; catalog.py, ledger.py and traces.py
read them; call_graph.py and refusals.py make their models; graph_drawing.py,
charts.py and waterfall.py draw them; pages.py serves them, app.py assembles the
application (`deptmesh.services.portal.app.build_app`, imported where it is used:
the command line stays quick), server.py runs it, command.py is the command line.
"""

from deptmesh.services.portal.sources import PortalSources, local_sources

__all__ = ["PortalSources", "local_sources"]
