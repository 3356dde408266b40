"""Integration types from the connector registry: config schemas, metric catalogs, validation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from inflow.api.deps import CurrentUser
from inflow.api.schemas import (
    FieldErrorPublic,
    IntegrationType,
    MetricPublic,
    ValidateRequest,
    ValidateResponse,
)
from inflow.api.services.sources import check_config, require_connector
from inflow.connectors import listed
from inflow.connectors.spec import Connector

router = APIRouter(tags=["integrations"])
# ``{type}`` in the URL as in API.md (and in OpenAPI), ``type_`` in Python (no builtin shadowing).
TypePath = Annotated[str, Path(alias="type")]


def _metrics(connector: Connector) -> list[MetricPublic]:
    return [
        MetricPublic(key=m.key, label=m.label, unit=m.unit, description=m.description)
        for m in connector.metrics
    ]


@router.get("/api/integrations/types", operation_id="integrations-types")
def list_types(_user: CurrentUser) -> list[IntegrationType]:
    """Every integration type with its config schema and metric catalog."""
    return [
        IntegrationType(
            type=c.slug,
            title=c.title,
            category=c.category,
            auth_type=c.auth_type,
            description=c.description,
            config_schema=c.config_schema(),
            metrics=_metrics(c),
        )
        for c in listed()
    ]


@router.get("/api/integrations/{type}/metrics", operation_id="integrations-metrics")
def list_metrics(type_: TypePath, _user: CurrentUser) -> list[MetricPublic]:
    """The metric catalog of one integration type."""
    return _metrics(require_connector(type_))


@router.post("/api/integrations/{type}/validate", operation_id="integrations-validate")
def validate(type_: TypePath, body: ValidateRequest, _user: CurrentUser) -> ValidateResponse:
    """Check a config against the type's schema without saving anything."""
    errors = check_config(require_connector(type_), body.config)
    return ValidateResponse(
        valid=not errors,
        errors=[FieldErrorPublic(field=e.field, message=e.message) for e in errors],
    )
