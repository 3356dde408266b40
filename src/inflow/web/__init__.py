"""The web UI: server-rendered pages (Jinja2) with htmx partial updates.

Pages call the same services as the API (``inflow.api.services``), never the API over HTTP.
``install(app)`` mounts the pages, the static files and the HTML error pages on an app that
``create_app`` has built.

| module | what it holds |
|---|---|
| ``routes`` | the router: ``/``, ``/login``, ``/logout``; includes each section's router |
| ``sources`` | Data Inflow (``/sources``): add, test, fetch → review → Create All, Connect |
| ``session`` | ``PageUser`` (the page's caller from the session cookie), login-form CSRF |
| ``templating`` | the Jinja2 environment, ``NAV`` and ``render()`` (user, CSRF, section) |
| ``forms`` | form fields from a JSON schema (a connector's config), values and errors |
| ``points`` | data points grouped by metric with totals; fetched batches awaiting "Create All" |
| ``errors`` | HTML error pages for browsers; ``/api`` keeps problem+json |

Adding a section (Marketplace, Spaces, ...): a module with its own ``router`` (routes take
``user: PageUser`` and ``session: SessionDep``, call a service, return ``render(request,
"<section>/page.html", {"section": "<key of NAV>", ...})``), included in ``routes.router``; templates extend ``base.html`` and import
``macros.html`` as ``ui`` (``field``, ``health_badge``, ``check_steps``, ``data_point_table``,
``problem``, ``dialog``). A state change is an ``hx-post`` (the CSRF header comes from
``<body hx-headers>``) or a form with ``<input type="hidden" name="csrf_token" value="{{ csrf
}}">``. An expected error renders the fragment again with its message and a 4xx status (htmx
swaps it); anything else raised ends in the page's ``#flash`` area. uPlot is at
``/static/vendor/uPlot.iife.min.js`` (and ``uPlot.min.css``), htmx is loaded by the layout.
Browser tests: ``tests/e2e/ui.py`` (``log_in``, ``check_page``: axe-core in both themes and
the screenshots).
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
