"""Data sources: validation against the connector's Config, secrets split off into the vault."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from inflow.api.services.validation import field_errors
from inflow.connectors import get_connector, registry
from inflow.connectors.spec import Connector, ConnectorConfig
from inflow.errors import FieldError, NotFoundError, ValidationFailedError
from inflow.storage.crypto import Vault
from inflow.storage.models import DataPoint as StoredPoint
from inflow.storage.models import DataSource, Role, Space, User, utcnow
from inflow.sync.engine import decrypted_config
from inflow.sync.scheduler import calls_per_sync, most_runs, next_time


def _unknown_type(slug: str) -> str:
    return f"unknown integration type {slug!r}; known types: {', '.join(sorted(registry()))}"


def require_connector(slug: str) -> Connector:
    """The connector of a type named in a URL; ``NotFoundError`` (a 404) when there is none."""
    connector = get_connector(slug)
    if connector is None:
        raise NotFoundError(_unknown_type(slug))
    return connector


def _is_secret_marker(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"set"}


def check_schedule(schedule: str | None, connector: Connector | None = None) -> None:
    """A schedule the scheduler understands (``every 1h``, ``0 6 * * *``) and, for a connector
    with a call quota (Clarity: ten a day), one whose syncs fit in it; else a 422 naming it."""
    if schedule is None:
        return
    try:
        next_time(schedule, utcnow())
    except ValueError as exc:
        raise ValidationFailedError("invalid schedule", [FieldError("schedule", str(exc))]) from exc
    quota = connector.quota if connector is not None else None
    if connector is None or quota is None:
        return
    calls = calls_per_sync(connector)  # the quota'd requests of one sync: one per stream read
    per = timedelta(days=1) if quota.per == "day" else timedelta(hours=1)
    runs = most_runs(schedule, per, cap=quota.limit)
    if calls and runs * calls > quota.limit:
        message = (
            f"{connector.title} allows {quota.limit} calls per {quota.per} and a sync makes "
            f"{calls}; this schedule starts up to {runs} syncs a {quota.per}: choose one with at "
            f"most {quota.limit // calls}, e.g. '@daily' or '30 0 * * *' (00:30 UTC)"
        )
        raise ValidationFailedError("invalid schedule", [FieldError("schedule", message)])


def validate_config(connector: Connector, config: dict[str, Any]) -> ConnectorConfig:
    """Validate ``config`` (camelCase) or raise with one error per bad field (``config.x``).
    A family (``calling``) validates against the member its ``platform`` names."""
    connector = connector.member(config)
    try:
        return connector.config.model_validate(config)
    except ValidationError as exc:
        raise ValidationFailedError("invalid config", field_errors(exc, "config")) from exc


def check_config(connector: Connector, config: dict[str, Any]) -> list[FieldError]:
    """The field errors of ``config`` (empty when valid), for the validate endpoint."""
    try:
        validate_config(connector, config)
    except ValidationFailedError as exc:
        return exc.errors
    return []


def split(connector: Connector, model: ConnectorConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """(public config, secrets) of a validated config, both keyed by camelCase name."""
    dumped = model.model_dump(mode="python", by_alias=True)
    secret_names = set(connector.config.secret_fields())
    public: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    as_json = model.model_dump(mode="json", by_alias=True)
    for key, value in dumped.items():
        if key in secret_names:
            if isinstance(value, SecretStr):
                secrets[key] = value.get_secret_value()
        else:
            public[key] = as_json[key]
    return public, secrets


def load_config(source: DataSource, vault: Vault) -> ConnectorConfig:
    """The full, decrypted config of ``source`` (only ever built to call a provider)."""
    return decrypted_config(source, require_connector(source.type), vault)


def shown_type(slug: str) -> str:
    """The API type of a stored source type: a family member is shown as its family."""
    connector = get_connector(slug)
    return connector.family if connector is not None and connector.family else slug


def public_config(source: DataSource) -> dict[str, Any]:
    """The config as shown to users: each secret field is ``{"set": bool}``."""
    connector = get_connector(source.type)
    shown = dict(source.config)
    if connector is not None:
        for name in connector.config.secret_fields():
            shown[name] = {"set": name in source.secret_names}
    return shown


def _store(source: DataSource, connector: Connector, model: ConnectorConfig, vault: Vault) -> None:
    public, secrets = split(connector, model)
    source.config = public
    source.secret_names = sorted(secrets)
    source.secrets = vault.encrypt(secrets) if secrets else None


def create_source(
    session: Session,
    *,
    owner: User,
    name: str,
    type_: str,
    config: dict[str, Any],
    vault: Vault,
    space_id: uuid.UUID | None = None,
    schedule: str | None = None,
) -> DataSource:
    connector = get_connector(type_)
    if connector is None:  # a field of the body, so a 422 naming it (not a 404 of the URL)
        raise ValidationFailedError("invalid type", [FieldError("type", _unknown_type(type_))])
    if space_id is not None and session.get(Space, space_id) is None:
        raise ValidationFailedError("invalid spaceId", [FieldError("spaceId", "no such space")])
    connector = connector.member(config)  # `calling` + platform: stored as the platform's type
    model = validate_config(connector, config)
    check_schedule(schedule, connector)
    source = DataSource(
        name=name, type=connector.slug, owner_id=owner.id, space_id=space_id, schedule=schedule
    )
    _store(source, connector, model, vault)
    session.add(source)
    session.flush()
    return source


def update_source(
    session: Session,
    *,
    source: DataSource,
    vault: Vault,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    space_id: uuid.UUID | None = None,
    schedule: str | None = None,
    fields_set: set[str] | frozenset[str] = frozenset(),
) -> DataSource:
    """Apply a PATCH: given config keys replace; omitted ones (secrets included) are kept."""
    connector = require_connector(source.type)
    if name is not None:
        source.name = name
    if "spaceId" in fields_set or "space_id" in fields_set:
        if space_id is not None and session.get(Space, space_id) is None:
            raise ValidationFailedError("invalid spaceId", [FieldError("spaceId", "no such space")])
        source.space_id = space_id
    if "schedule" in fields_set:
        check_schedule(schedule, connector)
        source.schedule = schedule
        source.next_run_at = None  # due at the scheduler's next tick
    if config is not None:
        current = dict(source.config)
        current.update(vault.decrypt(source.secrets) if source.secrets else {})
        secret_names = set(connector.config.secret_fields())
        for key, value in config.items():
            if key in secret_names and _is_secret_marker(value):
                continue  # {"set": true} echoed back from a GET keeps the stored secret
            current[key] = value
        model = validate_config(connector, current)
        _refuse_fixed_changes(session, source, model)
        _store(source, connector, model, vault)
    session.flush()
    return source


def _refuse_fixed_changes(session: Session, source: DataSource, model: ConnectorConfig) -> None:
    """A field the stored points depend on (``fixed_once_data``) keeps its value once there are
    points: a 422 per changed field (a new source may use the new value)."""
    fields = type(model).model_fields
    errors = []
    for name in model.fixed_once_data:
        key = fields[name].alias or name
        before = source.config.get(key, fields[name].default)
        if before != model.model_dump(mode="json", by_alias=True)[key]:
            errors.append(
                FieldError(
                    f"config.{key}",
                    f"cannot change once the source holds data points (it is {before!r}): "
                    "create a new source for another value",
                )
            )
    if (
        errors
        and session.execute(
            select(StoredPoint.id).where(StoredPoint.source_id == source.id).limit(1)
        ).first()
    ):
        raise ValidationFailedError("invalid config", errors)


def list_sources(session: Session, *, user: User) -> list[DataSource]:
    stmt = select(DataSource).order_by(DataSource.created_at)
    if user.role != Role.ADMIN:
        stmt = stmt.where(DataSource.owner_id == user.id)
    return list(session.execute(stmt).scalars())
