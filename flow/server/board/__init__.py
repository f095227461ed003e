"""The fedweave board: the party's jobs, their DAGs, metrics, models, data and logs in a
browser, served by every flow server at ``/`` (same process, same tokens).

A person exchanges a token (the server's or a user's, :mod:`flow.server.auth`) once at
``/login`` for an HttpOnly, SameSite=Strict session cookie (:mod:`.session`); the board's
JSON API under ``/board/api`` calls the same :class:`flow.ops.local.LocalOps` operations as
the CLI, under the same roles (:data:`flow.ops.api.ROLES`); state-changing requests also
carry the session's CSRF token. The pages are plain ES modules (``web/app``); the
third-party libraries come from npm (``web/package-lock.json``) and are copied into
``static/vendor`` by ``make board-assets``, never fetched from a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent
#: the board's own pages, scripts and styles
APP_DIR = HERE / "web" / "app"
#: cytoscape, dagre, echarts as copied by `make board-assets`
VENDOR_DIR = HERE / "static" / "vendor"


def install(app: FastAPI) -> None:
    """Serve the board on ``app``: its pages and API (:mod:`.routes`) and its static files.
    The static files hold no data, so they need no session (the login page uses them)."""
    from flow.server.board.routes import router
    from flow.server.board.routes_builder import router as builder_router
    from flow.server.board.routes_pages import router as pages_router
    from flow.server.board.routes_results import router as results_router

    app.include_router(router)
    app.include_router(builder_router)
    app.include_router(pages_router)
    app.include_router(results_router)
    app.mount("/board/app", StaticFiles(directory=APP_DIR), name="board-app")
    # before `make board-assets` the folder is missing: the job page then says what to run
    app.mount("/board/vendor", StaticFiles(directory=VENDOR_DIR, check_dir=False), name="board-vendor")
