"""Custom metrics: formulas over metric keys, queried through ``/api/data-points``."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import Field

from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.api.schemas import Schema
from inflow.api.services import metrics as svc
from inflow.api.services.formula import FormulaError, parse
from inflow.storage.models import CustomMetric

router = APIRouter(tags=["metrics"])


class CustomMetricCreate(Schema):
    key: str = Field(min_length=1, max_length=64)
    label: str = Field(min_length=1, max_length=200)
    unit: str = Field(default="number", min_length=1, max_length=32)
    formula: str = Field(min_length=1, max_length=500)


class CustomMetricPublic(Schema):
    id: uuid.UUID
    key: str
    label: str
    unit: str
    formula: str
    metrics: list[str]
    created_at: datetime


def to_public(row: CustomMetric) -> CustomMetricPublic:
    try:
        operands = list(parse(row.formula).operands)
    except FormulaError:  # saved by an older, laxer version
        operands = []
    return CustomMetricPublic(
        id=row.id,
        key=row.key,
        label=row.label,
        unit=row.unit,
        formula=row.formula,
        metrics=operands,
        created_at=row.created_at,
    )


@router.get("/api/metrics", operation_id="metrics-list")
def list_metrics(user: CurrentUser, session: SessionDep) -> list[CustomMetricPublic]:
    """Your custom metrics."""
    return [to_public(m) for m in svc.list_custom(session, owner_id=user.id)]


@router.post("/api/metrics", status_code=201, operation_id="metrics-create")
def create_metric(
    body: CustomMetricCreate, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> CustomMetricPublic:
    """Define a custom metric; unknown metric keys and cycles in its formula are a 422."""
    row = svc.create_custom(
        session, owner=user, key=body.key, label=body.label, unit=body.unit, formula=body.formula
    )
    audit("metric.create", target=f"custom_metrics:{row.key}", details={"formula": row.formula})
    return to_public(row)


@router.delete("/api/metrics/{key}", status_code=204, operation_id="metrics-delete")
def delete_metric(key: str, user: CurrentUser, session: SessionDep, audit: AuditDep) -> Response:
    """Delete one of your custom metrics (a 409 while another of yours uses it)."""
    svc.delete_custom(session, owner=user, key=key)
    audit("metric.delete", target=f"custom_metrics:{key}")
    return Response(status_code=204)
