"""Liveness, and reachability of the database and of the rate-limit store (Redis)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from inflow import __version__
from inflow.api.ratelimit import Limiter
from inflow.api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/api/health", operation_id="health-get", response_model=HealthPublic)
def health(request: Request) -> JSONResponse:
    """Public: service status, database and Redis reachability, and version."""
    database = "ok"
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        database = "unreachable"
    limiter: Limiter = request.app.state.limiter
    redis = "not configured"
    if limiter.shared:
        redis = "ok" if limiter.reachable() else "unreachable"
    status = "ok" if database == "ok" and redis != "unreachable" else "degraded"
    body = HealthPublic(status=status, database=database, redis=redis, version=__version__)
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if status == "ok" else 503)
