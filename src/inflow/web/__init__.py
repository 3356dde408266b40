"""The web UI: server-rendered pages (Jinja2) with htmx partial updates.

Pages call the same services as the API (``inflow.api.services``), never the API over HTTP.
``install(app)`` mounts the pages, the static files and the HTML error pages on an app that
``create_app`` has built.

| module | what it holds |
|---|---|
| ``routes`` | the router: ``/``, ``/login``, ``/logout`` and every section of the top bar |
| ``session`` | the page's caller from the session cookie, login-form CSRF, the cookie itself |
| ``templating`` | the Jinja2 environment and ``render()`` (the layout's context: user, CSRF, nav) |
| ``forms`` | form fields from a JSON-schema (a connector's config), with values and errors |
| ``errors`` | HTML error pages for browsers; ``/api`` keeps problem+json |
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from inflow.web import errors, routes
from inflow.web.templating import STATIC_DIR


def install(app: FastAPI) -> None:
    """Add the pages, ``/static`` and the HTML error answers (after ``errors.install``)."""
    app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    errors.install(app)
