"""The portal as an ASGI application: its pages, its own assets, the API reference.

Read-only: every route answers GET (and HEAD) only. Every asset is shipped in
this package (static/); nothing is loaded from another host.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from deptmesh.services.portal.ledger import LedgerReader
from deptmesh.services.portal.pages import Pages
from deptmesh.services.portal.sources import PortalSources

__all__ = ["build_app"]

_STATIC = Path(__file__).with_name("static")


def _favicon(_: Request) -> Response:
    return FileResponse(_STATIC / "favicon.svg", media_type="image/svg+xml")


def build_app(sources: PortalSources, reference: Path) -> Starlette:
    """The portal over `sources`, serving the built API reference in `reference` under
    /reference/."""
    environment = Environment(
        loader=PackageLoader("deptmesh.services.portal", "templates"),
        autoescape=select_autoescape(default=True),
    )
    templates = Jinja2Templates(env=environment)
    ledger = LedgerReader(sources)
    pages = Pages(sources, templates, ledger)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            ledger.close()

    routes: list[Route | Mount] = [
        Route(path, endpoint, methods=["GET"]) for path, endpoint in pages.routes()
    ]
    routes += [
        # Browsers ask for it whatever a page says, the reference's pages included.
        Route("/favicon.ico", _favicon, methods=["GET"]),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
        Mount("/reference", StaticFiles(directory=reference, html=True), name="reference"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
