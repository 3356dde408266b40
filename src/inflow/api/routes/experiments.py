"""Tests (experiments): CRUD, linked data points and results."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal, overload

from fastapi import APIRouter, Response
from pydantic import Field, model_validator

from inflow.api.authz import require
from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.api.schemas import Day, Schema
from inflow.api.services import experiments as svc
from inflow.storage.models import Experiment

router = APIRouter(tags=["tests"])

Status = Literal["draft", "running", "completed", "cancelled"]
Key = Annotated[str, Field(min_length=1, max_length=128)]


class Control(Schema):
    """What the change did not touch: another metric, another source, other dimension values
    (any of them; the rest are the test's metric and its sources, all dimension values)."""

    metric: Key | None = None
    source_id: uuid.UUID | None = None
    dimensions: dict[Key, Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, max_length=16
    )

    @model_validator(mode="after")
    def _something(self) -> Control:
        if self.metric is None and self.source_id is None and not self.dimensions:
            raise ValueError("a control names a metric, a sourceId or dimensions")
        return self


class Guardrail(Schema):
    """A metric the change must not harm: flagged when its change goes further than
    ``tolerance`` (relative: 0.05 is 5 %) in the ``badDirection``."""

    metric: Key
    bad_direction: Literal["increase", "decrease"]
    tolerance: float = Field(ge=0, le=100, allow_inf_nan=False)


class ExperimentCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    hypothesis: str | None = Field(default=None, max_length=5000)
    metric: str | None = Field(default=None, min_length=1, max_length=128)
    start_date: Day
    end_date: Day | None = None
    status: Status = "draft"
    control: Control | None = None
    guardrails: list[Guardrail] = Field(default_factory=list, max_length=20)


class ExperimentUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    hypothesis: str | None = Field(default=None, max_length=5000)
    metric: str | None = Field(default=None, min_length=1, max_length=128)
    start_date: Day | None = None
    end_date: Day | None = None
    status: Status | None = None
    control: Control | None = None
    guardrails: list[Guardrail] | None = Field(default=None, max_length=20)


class ExperimentPublic(Schema):
    id: uuid.UUID
    name: str
    hypothesis: str | None
    metric: str | None
    start_date: date
    end_date: date | None
    status: str
    control: Control | None
    guardrails: list[Guardrail]
    owner_id: uuid.UUID
    data_point_count: int
    created_at: datetime
    updated_at: datetime


class PointIds(Schema):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)


class Linked(Schema):
    linked: int
    already_linked: int


class WindowPublic(Schema):
    from_: date = Field(alias="from")
    to: date
    days: int
    value: float | None
    complete: bool


class ChangePublic(Schema):
    absolute: float | None
    relative: float | None


class IntervalPublic(Schema):
    absolute: tuple[float, float]
    relative: tuple[float, float] | None


class DaysPublic(Schema):
    baseline: int = Field(description="days of the baseline with data")
    during: int = Field(description="days of the test window with data")
    paired: int = Field(description="test days with data on the same weekday in the baseline")
    required: int = Field(description="pairs needed before anything is called significant")
    lag: int = Field(description="days between a test day and its baseline day (whole weeks)")


class Analysis(Schema):
    """The test of the change in daily values (``method``); ``significant`` is null, with a
    ``reason``, until there are enough days."""

    method: str
    confidence: float
    effect: ChangePublic
    interval: IntervalPublic | None
    p_value: float | None
    degrees_of_freedom: int | None
    days: DaysPublic
    significant: bool | None
    reason: str | None


class ControlResult(Analysis):
    metric: str
    source_id: uuid.UUID | None
    dimensions: dict[str, str]
    summary: str


class MetricResult(Analysis):
    metric: str
    unit: str | None
    aggregation: str | None
    baseline: WindowPublic | None
    during: WindowPublic | None
    change: ChangePublic
    baseline_daily_std_dev: float | None
    summary: str
    control: ControlResult | None


class GuardrailResult(Analysis):
    metric: str
    bad_direction: Literal["increase", "decrease"]
    tolerance: float
    status: Literal["ok", "breached", "inconclusive"]
    summary: str


class ResultsPublic(Schema):
    test_id: uuid.UUID
    summary: str = Field(description="what the numbers support, in words")
    rule: str
    method: str
    method_name: str
    confidence: float
    started: bool
    metrics: list[MetricResult]
    guardrails: list[GuardrailResult]


@overload
def _stored(value: None) -> None: ...
@overload
def _stored(value: Control | Guardrail) -> dict[str, Any]: ...
def _stored(value: Control | Guardrail | None) -> dict[str, Any] | None:
    """A control or guardrail as the test stores it (JSON, the API's field names)."""
    if value is None:
        return None
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


def to_public(test: Experiment, count: int) -> ExperimentPublic:
    return ExperimentPublic(
        id=test.id,
        name=test.name,
        hypothesis=test.hypothesis,
        metric=test.metric,
        start_date=test.start_date,
        end_date=test.end_date,
        status=test.status,
        control=Control.model_validate(test.control) if test.control else None,
        guardrails=[Guardrail.model_validate(g) for g in test.guardrails or []],
        owner_id=test.owner_id,
        data_point_count=count,
        created_at=test.created_at,
        updated_at=test.updated_at,
    )


def _one(session: SessionDep, test: Experiment) -> ExperimentPublic:
    return to_public(test, svc.point_counts(session, [test.id]).get(test.id, 0))


@router.get("/api/tests", operation_id="tests-list")
def list_tests(user: CurrentUser, session: SessionDep) -> list[ExperimentPublic]:
    """Your tests (every test for an admin)."""
    tests = svc.list_tests(session, user=user)
    counts = svc.point_counts(session, [t.id for t in tests])
    return [to_public(t, counts.get(t.id, 0)) for t in tests]


@router.post("/api/tests", status_code=201, operation_id="tests-create")
def create_test(
    body: ExperimentCreate, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> ExperimentPublic:
    """Create a test; its metric must exist, its end may not come before its start."""
    control = _stored(body.control)
    guardrails = [_stored(g) for g in body.guardrails]
    svc.check_fields(
        session,
        owner_id=user.id,
        metric=body.metric,
        start=body.start_date,
        end=body.end_date,
        control=control,
        guardrails=guardrails,
    )
    test = Experiment(
        owner_id=user.id,
        name=body.name,
        hypothesis=body.hypothesis,
        metric=body.metric,
        start_date=body.start_date,
        end_date=body.end_date,
        status=body.status,
        control=control,
        guardrails=guardrails,
    )
    session.add(test)
    session.flush()
    audit("test.create", target=f"tests:{test.id}", details={"status": test.status})
    return to_public(test, 0)


@router.get("/api/tests/{test_id}", operation_id="tests-get")
def get_test(
    test_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> ExperimentPublic:
    """One of your tests."""
    return _one(session, require(session, user, Experiment, test_id, audit=audit, action="read"))


@router.patch("/api/tests/{test_id}", operation_id="tests-update")
def update_test(
    test_id: uuid.UUID,
    body: ExperimentUpdate,
    user: CurrentUser,
    session: SessionDep,
    audit: AuditDep,
) -> ExperimentPublic:
    """Change a test; fields left out keep their values (``endDate: null`` clears it)."""
    test = require(session, user, Experiment, test_id, audit=audit)
    given = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    for name in ("name", "status", "start_date"):
        if given.get(name) is not None:
            changes[name] = given[name]
    for name in ("hypothesis", "metric", "end_date"):
        if name in given:
            changes[name] = given[name]
    if "control" in given:
        changes["control"] = _stored(body.control)
    if given.get("guardrails") is not None and body.guardrails is not None:
        changes["guardrails"] = [_stored(g) for g in body.guardrails]
    svc.check_fields(
        session,
        owner_id=test.owner_id,
        metric=changes.get("metric", test.metric),
        start=changes.get("start_date", test.start_date),
        end=changes.get("end_date", test.end_date),
        control=changes.get("control", test.control),
        guardrails=changes.get("guardrails", test.guardrails or []),
    )
    for name, value in changes.items():
        setattr(test, name, value)
    session.flush()
    audit("test.update", target=f"tests:{test.id}", details={"fields": sorted(changes)})
    return _one(session, test)


@router.delete("/api/tests/{test_id}", status_code=204, operation_id="tests-delete")
def delete_test(
    test_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> Response:
    """Delete a test and its links (the data points stay)."""
    test = require(session, user, Experiment, test_id, audit=audit)
    session.delete(test)
    audit("test.delete", target=f"tests:{test_id}")
    return Response(status_code=204)


@router.post("/api/tests/{test_id}/data-points", operation_id="tests-link")
def link_points(
    test_id: uuid.UUID, body: PointIds, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> Linked:
    """Link your data points to the test (each once); an unknown point is a 422, none linked."""
    test = require(session, user, Experiment, test_id, audit=audit)
    new, old = svc.link_points(session, user=user, test=test, ids=body.ids)
    audit("test.link", target=f"tests:{test_id}", details={"linked": new, "alreadyLinked": old})
    return Linked(linked=new, already_linked=old)


@router.get("/api/tests/{test_id}/results", operation_id="tests-results")
def results(
    test_id: uuid.UUID, user: CurrentUser, session: SessionDep, audit: AuditDep
) -> ResultsPublic:
    """Each metric of the test: baseline before it, value during it, the change with its
    interval and p-value (and against the test's control), and each guardrail's status."""
    test = require(session, user, Experiment, test_id, audit=audit, action="read")
    return ResultsPublic.model_validate(svc.results(session, test))
