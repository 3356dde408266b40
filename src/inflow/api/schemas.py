"""Request and response models: ``XCreate`` / ``XUpdate`` / ``XPublic``; JSON keys are camelCase."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from inflow import bounds

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# ---------------------------------------------------------------- bounded dates and integers
# Every date, time and integer the API takes is one of these (the bounds: inflow/bounds.py).

_DAY_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MOMENT_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}.*)?$")


def _text(value: Any, pattern: re.Pattern[str], shape: str) -> Any:
    """ISO 8601 text only: pydantic would read a number (``-1.17e-38``, ``"1700000000"``) as
    seconds since 1970."""
    if value is None or isinstance(value, date):  # a datetime is a date too
        return value
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"not {shape}")
    return value


def _day_text(value: Any) -> Any:
    return _text(value, _DAY_TEXT, "an ISO 8601 date (YYYY-MM-DD)")


def _moment_text(value: Any) -> Any:
    return _text(value, _MOMENT_TEXT, "an ISO 8601 date-time (YYYY-MM-DDTHH:MM:SSZ)")


def _day_or_moment_text(value: Any) -> Any:
    # "2026-11-10" is a calendar date (a whole day), not midnight UTC of it.
    if isinstance(value, str) and _DAY_TEXT.match(value):
        return date.fromisoformat(value)
    return _text(value, _MOMENT_TEXT, "an ISO 8601 date (YYYY-MM-DD) or date-time")


def aware(value: datetime) -> datetime:
    """A time without an offset means UTC, as every stored time."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _day_within(value: date) -> date:
    if not bounds.MIN_DATE <= value <= bounds.MAX_DATE:
        raise ValueError(f"the date must be {bounds.DATE_RANGE}")
    return value


def _moment_within(value: datetime) -> datetime:
    value = aware(value)
    if not bounds.MIN_MOMENT <= value <= bounds.END_MOMENT:
        raise ValueError(f"the time must be {bounds.DATE_RANGE} (UTC)")
    return value


def _within(value: date | datetime | None) -> date | datetime | None:
    if isinstance(value, datetime):
        return _moment_within(value)
    return _day_within(value) if value is not None else None


Day = Annotated[date, BeforeValidator(_day_text), AfterValidator(_day_within)]
"""A calendar date, ``YYYY-MM-DD``, within the bounds."""
Moment = Annotated[datetime, BeforeValidator(_moment_text), AfterValidator(_moment_within)]
"""An instant (no offset: UTC), within the bounds; aware after validation."""
DayOrMoment = Annotated[
    datetime | date | None, BeforeValidator(_day_or_moment_text), AfterValidator(_within)
]
"""A whole day (``YYYY-MM-DD``) or an instant (aware), within the bounds."""


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, from_attributes=True, extra="forbid"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # PostgreSQL stores no NUL character in text or JSON: refused here, named, on every
        # backend (only input is a mapping; a row read from the database is not checked).
        if isinstance(data, Mapping) and (where := nul_at(data)) is not None:
            raise ValueError(f"{where or 'a value'} holds a NUL character (\\u0000)")
        return data


def nul_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first text (key or value) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return where
        if (found := nul_at(item, where)) is not None:
            return found
    return None


class LoginRequest(Schema):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class UserPublic(Schema):
    id: uuid.UUID
    email: str
    role: Literal["admin", "member"]


class LoginResponse(Schema):
    token: str
    user: UserPublic


class UserCreate(Schema):
    # A plain shape check: self-hosted teams use internal domains (corp.local) that a
    # "deliverable address" validator refuses.
    email: str = Field(max_length=320)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["admin", "member"] = "member"

    @field_validator("email")
    @classmethod
    def _looks_like_an_email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("not an email address (name@domain)")
        return value


class TokenCreate(Schema):
    name: str = Field(default="api", min_length=1, max_length=200)


class TokenCreated(Schema):
    id: uuid.UUID
    name: str
    token: str


class TokenPublic(Schema):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class HealthPublic(Schema):
    status: str
    database: str
    redis: str  # ok | unreachable | not configured (no INFLOW_REDIS_URL)
    version: str


class SpaceCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)


class SpaceUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)


class MemberPublic(Schema):
    user_id: uuid.UUID
    role: str


class SpacePublic(Schema):
    id: uuid.UUID
    name: str
    description: str | None
    owner_id: uuid.UUID
    role: str | None = None
    created_at: datetime
    updated_at: datetime


class MemberAdd(Schema):
    user_id: uuid.UUID
    role: Literal["owner", "editor", "viewer"] = "viewer"


class InstallationRef(Schema):
    """An installation (data source) that synced a space item."""

    source_id: uuid.UUID
    name: str


class AssetPublic(Schema):
    id: uuid.UUID
    source_id: uuid.UUID
    service_id: str
    external_id: str
    name: str
    kind: str
    url: str | None
    embed_url: str | None = None
    folder: str | None = None
    updated_at: datetime
    # additions (docs/api-additions.md): the folder item a dashboard is in, a folder's parent
    # folder item, the provider's version and update time, every installation that synced it
    folder_id: uuid.UUID | None = None
    parent: uuid.UUID | None = None
    version: int | None = None
    remote_updated_at: datetime | None = None
    installations: list[InstallationRef] = Field(default_factory=list)


class Health(Schema):
    status: Literal["unknown", "ok", "failing", "needs_reauth"]
    checked_at: datetime | None
    message: str | None
    # Failures that get attention (docs/alerts.md): syncs failed in a row, the pause after too
    # many (resumed by a person), when a run last stored new data, and the staleness flag.
    consecutive_failures: int = 0
    paused: bool = False
    paused_at: datetime | None = None
    paused_reason: str | None = None
    last_advanced_at: datetime | None = None
    stale: bool = False
    stale_reason: str | None = None


class SourceCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)
    space_id: uuid.UUID | None = None
    schedule: str | None = Field(default=None, max_length=100)


class SourceUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = None
    space_id: uuid.UUID | None = None
    schedule: str | None = Field(default=None, max_length=100)


class SourcePublic(Schema):
    id: uuid.UUID
    name: str
    type: str
    config: dict[str, Any]
    owner_id: uuid.UUID
    space_id: uuid.UUID | None
    schedule: str | None
    health: Health
    created_at: datetime
    updated_at: datetime
    # Where the provider sends events, for a type that takes webhooks (custom push, calling)
    webhook_url: str | None = None
    # Scheduled sources (docs/api-additions.md): the next slot (the schedule's time plus the
    # source's jitter; null: at the scheduler's next tick), and what the schedule waits for
    # when the provider quota left cannot cover a sync ({state: "waiting", reason, until}).
    next_run_at: datetime | None = None
    schedule_waiting: dict[str, str] | None = None


class IntegrationType(Schema):
    type: str
    title: str
    category: str
    auth_type: str
    description: str
    config_schema: dict[str, Any]
    metrics: list[MetricPublic]


class MetricPublic(Schema):
    key: str
    label: str
    unit: str
    description: str


class ValidateRequest(Schema):
    config: dict[str, Any] = Field(default_factory=dict)


class FieldErrorPublic(Schema):
    field: str
    message: str


class ValidateResponse(Schema):
    valid: bool
    errors: list[FieldErrorPublic]


class AuditEventPublic(Schema):
    id: int
    at: datetime
    actor: str | None
    action: str
    target: str | None
    outcome: str
    ip: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


IntegrationType.model_rebuild()
