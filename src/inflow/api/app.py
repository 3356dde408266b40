"""create_app(): the FastAPI application with its middleware, error mapping and routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio
import httpx
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from inflow import __version__, web
from inflow.api import errors
from inflow.api.deps import TokenUsage, rate_limit
from inflow.api.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from inflow.api.ratelimit import Limiter
from inflow.api.routes import (
    audit,
    auth,
    backfills,
    data_points,
    experiments,
    health,
    integrations,
    marketplace,
    metrics,
    oauth,
    runs,
    sources,
    spaces,
    webhooks,
)
from inflow.api.services.validation import no_nul_in_parameters
from inflow.http.client import HttpOptions
from inflow.http.ratelimit import OutboundLimiter
from inflow.settings import Settings, get_settings
from inflow.storage.crypto import KeyRing, Vault, derive_key
from inflow.storage.db import (
    BACKGROUND_CONNECTIONS,
    apply_job_schema,
    create_db_engine,
    make_session_factory,
    upgrade,
)
from inflow.storage.models import Backfill, SyncRun
from inflow.sync.attention import AlertOptions
from inflow.sync.backfill import UNFINISHED, recover_chunks
from inflow.sync.engine import EngineDeps, recover_stale_runs
from inflow.sync.jobs import JobQueue, distributed
from inflow.sync.worker import InProcessWorker

# Swagger UI 5 (reads OpenAPI 3.1), shipped inside the fastapi-offline package: no CDN.
SWAGGER_UI = str(resources.files("fastapi_offline") / "static")


def http_options(settings: Settings) -> HttpOptions:
    return HttpOptions(
        connect_timeout_s=settings.http_connect_timeout_s,
        read_timeout_s=settings.http_read_timeout_s,
        allow_private_urls=settings.allow_private_urls,
    )


def engine_deps(
    settings: Settings,
    factory: sessionmaker[Session],
    vault: Vault,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EngineDeps:
    """What the sync engine needs, from the service settings (API process or worker)."""
    return EngineDeps(
        factory=factory,
        vault=vault,
        options=http_options(settings),
        limiter=OutboundLimiter(settings.redis_url),
        transport=transport,
        alerts=alert_options(settings),
    )


def alert_options(settings: Settings) -> AlertOptions:
    """Failures that get attention: the pause threshold and the signed alert webhook."""
    secret = settings.alert_webhook_secret
    return AlertOptions(
        webhook_url=settings.alert_webhook_url,
        secret=secret.get_secret_value() if secret is not None else None,
        pause_after=settings.pause_after_failures,
        allow_private_urls=settings.allow_private_urls,
    )


def resume_runs(factory: sessionmaker[Session], worker: InProcessWorker) -> None:
    """At start: runs whose process died end as interrupted (this server owned them: a new
    sync may start at once and resumes from the checkpoint); runs still queued are started
    (embedded mode; external workers pick queued runs up themselves)."""
    if worker.external:
        return
    with factory() as session:
        recover_stale_runs(session)
        recover_chunks(session)  # their backfills say they wait to be resumed
        queued = list(
            session.execute(select(SyncRun.id).where(SyncRun.status == "queued")).scalars()
        )
        session.commit()
    for run_id in queued:
        worker.submit(run_id)
    with factory() as session:  # backfills carry on with their chunks not done
        backfills = session.execute(
            select(Backfill.id, Backfill.source_id).where(Backfill.state.in_(UNFINISHED))
        ).all()
    for backfill_id, source_id in backfills:
        worker.backfill(backfill_id, source_id)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    migrate: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    scheduler: bool = False,
) -> FastAPI:
    """Build the app. Tests pass their own settings (and engine); ``serve`` uses the env.

    ``transport`` routes provider calls in-process (tests); ``scheduler`` runs the embedded
    scheduler (``serve`` and ``demo``)."""
    settings = settings or get_settings()
    engine = engine or create_db_engine(
        settings.resolved_database_url,
        connections=settings.db_concurrency + BACKGROUND_CONNECTIONS,
    )
    if migrate:
        upgrade(engine)
    keyring = KeyRing(settings)
    keys = keyring.keys()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Threads for every request that holds a database turn, and some for those that don't.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, settings.db_concurrency + 20)
        yield
        app.state.worker.shutdown()
        app.state.token_usage.close()
        engine.dispose()

    app = FastAPI(
        title="Inflow",
        version=__version__,
        description="Self-hosted data integration hub.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(rate_limit), Depends(no_nul_in_parameters)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.db_turns = anyio.CapacityLimiter(settings.db_concurrency)
    app.state.token_usage = TokenUsage(app.state.session_factory)
    app.state.vault = Vault.from_keyring(keyring)
    app.state.csrf_key = derive_key("csrf:" + keys[0].decode())
    app.state.limiter = Limiter(settings.redis_url)
    app.state.engine_deps = engine_deps(
        settings, app.state.session_factory, app.state.vault, transport=transport
    )
    jobs = None
    if distributed(settings):  # PostgreSQL + external: syncs are procrastinate jobs
        if migrate:
            apply_job_schema(engine)
        jobs = JobQueue(settings.resolved_database_url)
    app.state.worker = InProcessWorker(
        app.state.engine_deps,
        external=settings.worker == "external",
        jobs=jobs,
        concurrency=settings.embedded_concurrency,
    )
    resume_runs(app.state.session_factory, app.state.worker)
    if scheduler and settings.worker == "embedded":
        app.state.worker.start_scheduler()

    errors.install(app)
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)

    routers = (health, auth, spaces, sources, runs, oauth, integrations, marketplace, audit)
    for module in (*routers, backfills, data_points, metrics, experiments, webhooks):
        app.include_router(module.router)

    app.mount("/docs/static", StaticFiles(directory=SWAGGER_UI), name="docs-static")
    web.install(app)  # the pages, /static and HTML error pages for browsers

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        # Swagger UI is served from the installed package: no CDN, works offline.
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Inflow API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
        )

    return app


def openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus every problem+json answer (``errors.document_problems``)."""
    if app.openapi_schema is None:
        app.openapi_schema = errors.document_problems(
            get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
        )
    return app.openapi_schema


def app_factory() -> Any:
    """For ``uvicorn --factory inflow.api.app:app_factory``."""
    return create_app()
