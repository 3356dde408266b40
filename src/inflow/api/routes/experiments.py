"""Tests (experiments): CRUD, linked data points and results."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import Field

from inflow.api.authz import require
from inflow.api.deps import AuditDep, CurrentUser, SessionDep
from inflow.api.schemas import Day, Schema
from inflow.api.services import experiments as svc
from inflow.storage.models import Experiment

router = APIRouter(tags=["tests"])

Status = Literal["draft", "running", "completed", "cancelled"]


class ExperimentCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    hypothesis: str | None = Field(default=None, max_length=5000)
    metric: str | None = Field(default=None, min_length=1, max_length=128)
    start_date: Day
    end_date: Day | None = None
    status: Status = "draft"


class ExperimentUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    hypothesis: str | None = Field(default=None, max_length=5000)
    metric: str | None = Field(default=None, min_length=1, max_length=128)
    start_date: Day | None = None
    end_date: Day | None = None
    status: Status | None = None


class ExperimentPublic(Schema):
    id: uuid.UUID
    name: str
    hypothesis: str | None
    metric: str | None
    start_date: date
    end_date: date | None
    status: str
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


class MetricResult(Schema):
    metric: str
    unit: str | None
    aggregation: str | None
    baseline: WindowPublic | None
    during: WindowPublic | None
    change: ChangePublic
    baseline_daily_std_dev: float | None
    significant: bool | None


class ResultsPublic(Schema):
    test_id: uuid.UUID
    rule: str
    started: bool
    metrics: list[MetricResult]


def to_public(test: Experiment, count: int) -> ExperimentPublic:
    return ExperimentPublic(
        id=test.id,
        name=test.name,
        hypothesis=test.hypothesis,
        metric=test.metric,
        start_date=test.start_date,
        end_date=test.end_date,
        status=test.status,
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
    svc.check_fields(
        session, owner_id=user.id, metric=body.metric, start=body.start_date, end=body.end_date
    )
    test = Experiment(
        owner_id=user.id,
        name=body.name,
        hypothesis=body.hypothesis,
        metric=body.metric,
        start_date=body.start_date,
        end_date=body.end_date,
        status=body.status,
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
    svc.check_fields(
        session,
        owner_id=test.owner_id,
        metric=changes.get("metric", test.metric),
        start=changes.get("start_date", test.start_date),
        end=changes.get("end_date", test.end_date),
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
    """Each metric of the test: baseline before it, value during it, change, significance."""
    test = require(session, user, Experiment, test_id, audit=audit, action="read")
    return ResultsPublic.model_validate(svc.results(session, test))
