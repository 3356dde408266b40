"""Metric keys: the connectors' catalogs and each user's custom metrics (formulas over keys).

A custom metric belongs to its creator. Its key may not shadow a catalog metric, its formula
may name only known keys (catalog metrics, the metrics the owner's custom sources declare and
the owner's other custom metrics) and may not
reach itself through them; a custom metric another one uses cannot be deleted.
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.services.formula import Formula, FormulaError, find_cycle, parse
from inflow.connectors import registry
from inflow.connectors.spec import MetricDef
from inflow.errors import ConflictError, FieldError, NotFoundError, ValidationFailedError
from inflow.storage.models import CustomMetric, DataSource, User

KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def catalog() -> dict[str, MetricDef]:
    """Every connector's metrics by key (the first connector by slug wins a shared key)."""
    found: dict[str, MetricDef] = {}
    for slug in sorted(registry()):
        for metric in registry()[slug].metrics:
            found.setdefault(metric.key, metric)
    return found


def list_custom(session: Session, *, owner_id: uuid.UUID) -> list[CustomMetric]:
    return list(
        session.execute(
            select(CustomMetric).where(CustomMetric.owner_id == owner_id).order_by(CustomMetric.key)
        ).scalars()
    )


def formulas(session: Session, *, owner_id: uuid.UUID) -> dict[str, Formula]:
    """The owner's custom metrics, parsed (each was checked when it was saved)."""
    parsed: dict[str, Formula] = {}
    for row in list_custom(session, owner_id=owner_id):
        try:
            parsed[row.key] = parse(row.formula)
        except FormulaError:  # saved by an older, laxer version: treated as unknown
            continue
    return parsed


def is_known(session: Session, *, owner_id: uuid.UUID, key: str) -> bool:
    """A connector's metric, the owner's custom metric, or one a source of theirs declares
    (a custom source names its own metrics in its mapping)."""
    if key in catalog() or key in formulas(session, owner_id=owner_id):
        return True
    return bool(declared(session, owner_id=owner_id, keys=[key]))


def declared(session: Session, *, owner_id: uuid.UUID, keys: list[str]) -> set[str]:
    """Those of ``keys`` that a source of the owner declares (a custom source's own metrics)."""
    declaring = {c.slug: c for c in registry().values() if c.declared is not None}
    if not declaring or not keys:
        return set()
    rows = session.execute(
        select(DataSource.type, DataSource.config).where(
            DataSource.owner_id == owner_id, DataSource.type.in_(declaring)
        )
    ).all()
    return {
        key
        for key in keys
        if any(declaring[r.type].metric(key, config=r.config) is not None for r in rows)
    }


def create_custom(
    session: Session, *, owner: User, key: str, label: str, unit: str, formula: str
) -> CustomMetric:
    """Check and store a custom metric; 422 naming the bad field, 409 for a taken key."""
    errors: list[FieldError] = []
    builtin = catalog()
    if not KEY.match(key):
        errors.append(
            FieldError("key", "lowercase letters, digits and '_', starting with a letter")
        )
    elif key in builtin:
        errors.append(FieldError("key", f"{key!r} is a connector metric; choose another key"))
    others = formulas(session, owner_id=owner.id)
    parsed: Formula | None = None
    try:
        parsed = parse(formula)
    except FormulaError as exc:
        errors.append(FieldError("formula", str(exc)))
    if parsed is not None:
        unknown = [k for k in parsed.operands if k not in builtin and k not in others]
        # a custom source's own metrics (its mapping declares them) are known too
        ours = declared(session, owner_id=owner.id, keys=[k for k in unknown if k != key])
        unknown = [k for k in unknown if k not in ours]
        if key in unknown:
            errors.append(FieldError("formula", f"the formula uses {key!r} itself: a cycle"))
            unknown.remove(key)
        if unknown:
            errors.append(FieldError("formula", f"unknown metrics: {', '.join(unknown)}"))
        else:
            cycle = find_cycle(key, {**others, key: parsed})
            if cycle is not None:
                errors.append(FieldError("formula", f"a cycle: {' → '.join(cycle)}"))
    if errors or parsed is None:
        raise ValidationFailedError("invalid custom metric", errors)
    if key in others:
        raise ConflictError(f"you already have a custom metric {key!r}; delete it first")
    row = CustomMetric(owner_id=owner.id, key=key, label=label, unit=unit, formula=parsed.text)
    session.add(row)
    session.flush()
    return row


def delete_custom(session: Session, *, owner: User, key: str) -> CustomMetric:
    """Delete a custom metric (404 if the owner has none by that key; 409 while another of
    theirs uses it)."""
    row = session.execute(
        select(CustomMetric).where(CustomMetric.owner_id == owner.id, CustomMetric.key == key)
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"custom metric {key!r} not found")
    users = sorted(
        k for k, f in formulas(session, owner_id=owner.id).items() if k != key and key in f.operands
    )
    if users:
        raise ConflictError(f"custom metric {key!r} is used by {', '.join(users)}")
    session.delete(row)
    return row
