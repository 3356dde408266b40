"""Liveness and database reachability."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from inflow import __version__
from inflow.api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/api/health", operation_id="health-get", response_model=HealthPublic)
def health(request: Request) -> JSONResponse:
    """Public: service status, database reachability and version."""
    database = "ok"
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        database = "unreachable"
    status = "ok" if database == "ok" else "degraded"
    body = HealthPublic(status=status, database=database, version=__version__)
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if status == "ok" else 503)
